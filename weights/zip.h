// Minimal reader for the zip archives torch.save writes: central directory (with ZIP64
// records, needed for files over 4 GiB) and the local headers, so that the bytes of each
// stored (uncompressed) entry can be used in place. Every offset and size is checked
// against the archive size; nothing is decompressed.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ditkit::weights {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 = stored
  uint16_t flags = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t data_offset = 0;  // first byte of the entry's data in the archive
};

class ZipArchive {
 public:
  // `data` must outlive the archive; `path` names the file in errors.
  ZipArchive(const uint8_t* data, uint64_t size, std::string path);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;  // null when absent
  // The entry's bytes (offset into the archive); throws naming the entry when it is
  // missing, compressed or encrypted.
  const ZipEntry& stored(std::string_view name) const;
  const uint8_t* data(const ZipEntry& entry) const { return data_ + entry.data_offset; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  std::string path_;
  std::vector<ZipEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> entry
};

}  // namespace ditkit::weights
