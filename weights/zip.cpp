#include "weights/zip.h"

#include "core/error.h"

namespace ditkit::weights {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kLocator64Sig = 0x07064b50;
constexpr uint64_t kEndBytes = 22;
constexpr uint64_t kCentralBytes = 46;
constexpr uint64_t kLocalBytes = 30;
constexpr uint64_t kLocatorBytes = 20;
constexpr uint64_t kEnd64Bytes = 56;
constexpr uint16_t kZip64ExtraId = 0x0001;

// Little-endian fields of the archive, each read checked against its size.
class Fields {
 public:
  Fields(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  void check(uint64_t pos, uint64_t len, const char* what) const {
    DK_CHECK(len <= size_ && pos <= size_ - len, path_, ": corrupt zip archive: ", what, " at byte ", pos, " (",
             len, " bytes) lies outside the file of ", size_, " bytes");
  }
  template <typename T>
  T get(uint64_t pos, const char* what) const {
    check(pos, sizeof(T), what);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= T(data_[pos + i]) << (8 * i);
    return v;
  }
  std::string text(uint64_t pos, uint64_t len, const char* what) const {
    check(pos, len, what);
    return std::string(reinterpret_cast<const char*>(data_ + pos), len);
  }
  uint64_t size() const { return size_; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  const std::string& path_;
};

// The end of central directory record: the last signature match whose comment fits the file.
uint64_t find_end_record(const Fields& f, const std::string& path) {
  DK_CHECK(f.size() >= kEndBytes, path, ": not a zip archive (", f.size(), " bytes, too small)");
  const uint64_t lowest = f.size() > kEndBytes + 0xffff ? f.size() - kEndBytes - 0xffff : 0;
  for (uint64_t pos = f.size() - kEndBytes + 1; pos-- > lowest;) {
    if (f.get<uint32_t>(pos, "end record") == kEndSig &&
        pos + kEndBytes + f.get<uint16_t>(pos + 20, "comment length") <= f.size())
      return pos;
  }
  fail(path, ": not a zip archive (no end of central directory record)");
}

}  // namespace

ZipArchive::ZipArchive(const uint8_t* data, uint64_t size, std::string path)
    : data_(data), size_(size), path_(std::move(path)) {
  const Fields f(data, size, path_);
  const uint64_t end = find_end_record(f, path_);
  uint64_t count = f.get<uint16_t>(end + 10, "entry count");
  uint64_t dir_size = f.get<uint32_t>(end + 12, "central directory size");
  uint64_t dir_offset = f.get<uint32_t>(end + 16, "central directory offset");
  uint32_t disk = f.get<uint16_t>(end + 4, "disk number");
  if (end >= kLocatorBytes && f.get<uint32_t>(end - kLocatorBytes, "zip64 locator") == kLocator64Sig) {
    const uint64_t end64 = f.get<uint64_t>(end - kLocatorBytes + 8, "zip64 end record offset");
    f.check(end64, kEnd64Bytes, "zip64 end record");
    DK_CHECK(f.get<uint32_t>(end64, "zip64 end record") == kEnd64Sig, path_,
             ": corrupt zip archive: no zip64 end of central directory record at byte ", end64);
    disk = f.get<uint32_t>(end64 + 16, "zip64 disk number");
    count = f.get<uint64_t>(end64 + 32, "zip64 entry count");
    dir_size = f.get<uint64_t>(end64 + 40, "zip64 central directory size");
    dir_offset = f.get<uint64_t>(end64 + 48, "zip64 central directory offset");
  }
  DK_CHECK(disk == 0, path_, ": multi-part zip archives are not supported");
  f.check(dir_offset, dir_size, "central directory");
  DK_CHECK(count <= dir_size / kCentralBytes, path_, ": corrupt zip archive: ", count,
           " entries cannot fit a central directory of ", dir_size, " bytes");

  entries_.reserve(count);
  const uint64_t dir_end = dir_offset + dir_size;
  uint64_t pos = dir_offset;
  for (uint64_t i = 0; i < count; ++i) {
    DK_CHECK(pos + kCentralBytes <= dir_end && f.get<uint32_t>(pos, "central directory entry") == kCentralSig,
             path_, ": corrupt zip archive: central directory entry ", i, " at byte ", pos, " is invalid");
    ZipEntry e;
    e.flags = f.get<uint16_t>(pos + 8, "flags");
    e.method = f.get<uint16_t>(pos + 10, "method");
    e.compressed_size = f.get<uint32_t>(pos + 20, "compressed size");
    e.size = f.get<uint32_t>(pos + 24, "size");
    const uint64_t name_len = f.get<uint16_t>(pos + 28, "name length");
    const uint64_t extra_len = f.get<uint16_t>(pos + 30, "extra length");
    const uint64_t comment_len = f.get<uint16_t>(pos + 32, "comment length");
    uint64_t local = f.get<uint32_t>(pos + 42, "local header offset");
    const uint64_t next = pos + kCentralBytes + name_len + extra_len + comment_len;
    DK_CHECK(next <= dir_end, path_, ": corrupt zip archive: central directory entry ", i,
             " runs past the directory end");
    e.name = f.text(pos + kCentralBytes, name_len, "entry name");

    // ZIP64 extra field: 64-bit values, present only for the fields saturated at 0xffffffff.
    uint64_t extra = pos + kCentralBytes + name_len;
    const uint64_t extra_end = extra + extra_len;
    while (extra + 4 <= extra_end) {
      const uint16_t id = f.get<uint16_t>(extra, "extra field id");
      const uint64_t len = f.get<uint16_t>(extra + 2, "extra field length");
      DK_CHECK(extra + 4 + len <= extra_end, path_, ": corrupt zip archive: extra field of entry '", e.name,
               "' runs past its end");
      if (id == kZip64ExtraId) {
        uint64_t field = extra + 4;
        for (uint64_t* value : {&e.size, &e.compressed_size, &local}) {
          if (*value != 0xffffffffu) continue;
          DK_CHECK(field + 8 <= extra + 4 + len, path_, ": corrupt zip archive: zip64 field of entry '", e.name,
                   "' is too short");
          *value = f.get<uint64_t>(field, "zip64 field");
          field += 8;
        }
      }
      extra += 4 + len;
    }

    // Data starts after the local header, whose name and extra lengths may differ from the central ones.
    DK_CHECK(f.get<uint32_t>(local, "local header") == kLocalSig,
             path_, ": corrupt zip archive: entry '", e.name, "' has no local header at byte ", local);
    e.data_offset = local + kLocalBytes + f.get<uint16_t>(local + 26, "local name length") +
                    f.get<uint16_t>(local + 28, "local extra length");
    DK_CHECK(e.data_offset <= size_ && e.compressed_size <= size_ - e.data_offset, path_,
             ": corrupt zip archive: data of entry '", e.name, "' (", e.compressed_size, " bytes at byte ",
             e.data_offset, ") lies outside the file of ", size_, " bytes");
    DK_CHECK(index_.emplace(e.name, entries_.size()).second, path_, ": corrupt zip archive: entry '", e.name,
             "' appears twice");
    entries_.push_back(std::move(e));
    pos = next;
  }
}

const ZipEntry* ZipArchive::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const ZipEntry& ZipArchive::stored(std::string_view name) const {
  const ZipEntry* e = find(name);
  DK_CHECK(e, path_, ": zip entry '", name, "' is missing");
  DK_CHECK(!(e->flags & 1), path_, ": zip entry '", name, "' is encrypted");
  DK_CHECK(e->method == 0, path_, ": zip entry '", name, "' is compressed (method ", e->method,
           "); only stored entries are supported, as torch.save writes them");
  DK_CHECK(e->compressed_size == e->size, path_, ": corrupt zip archive: stored entry '", name, "' has size ",
           e->size, " but occupies ", e->compressed_size, " bytes");
  return *e;
}

}  // namespace ditkit::weights
