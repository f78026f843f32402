#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "core/progress.h"

using namespace ditkit;

namespace {

// Everything written to a tmpfile (never a terminal).
std::string contents(FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  for (int c; (c = std::fgetc(f)) != EOF;) s += char(c);
  return s;
}

}  // namespace

TEST(Progress, FormatEta) {
  EXPECT_EQ(format_eta(0), "00:00");
  EXPECT_EQ(format_eta(5.9), "00:05");
  EXPECT_EQ(format_eta(65), "01:05");
  EXPECT_EQ(format_eta(3599), "59:59");
  EXPECT_EQ(format_eta(3725), "1:02:05");
  EXPECT_EQ(format_eta(100 * 3600), "100:00:00");
  EXPECT_EQ(format_eta(-1), "?");
  EXPECT_EQ(format_eta(std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(format_eta(NAN), "?");
}

TEST(Progress, FormatRate) {
  EXPECT_EQ(format_rate(2.5), "2.50it/s");
  EXPECT_EQ(format_rate(1.0), "1.00it/s");
  EXPECT_EQ(format_rate(0.25), "4.00s/it");
  EXPECT_EQ(format_rate(0), "?it/s");
  EXPECT_EQ(format_rate(-3), "?it/s");
  EXPECT_EQ(format_rate(NAN), "?it/s");
}

TEST(Progress, FormatLine) {
  EXPECT_EQ(format_progress_line("denoise", 10, 50, 20.0), "denoise 10/50 [00:20<01:20, 2.00s/it]");
  EXPECT_EQ(format_progress_line("vae", 30, 40, 10.0), "vae 30/40 [00:10<00:03, 3.00it/s]");
  EXPECT_EQ(format_progress_line("denoise", 0, 50, 0.0), "denoise 0/50 [00:00<?, ?it/s]");
  EXPECT_EQ(format_progress_line("", 50, 50, 100.0), "50/50 [01:40<00:00, 2.00s/it]");
}

TEST(Progress, QuietWhenNotATerminal) {
  FILE* f = std::tmpfile();
  ASSERT_TRUE(f);
  {
    Progress p(5, "denoise", {.out = f});
    for (int i = 0; i < 5; ++i) p.tick();
    EXPECT_EQ(p.step(), 5);
  }
  EXPECT_EQ(contents(f), "");
  std::fclose(f);
}

TEST(Progress, VerboseSummaryWhenNotATerminal) {
  FILE* f = std::tmpfile();
  ASSERT_TRUE(f);
  Progress p(4, "denoise", {.out = f, .verbose = true});
  p.tick(4);
  p.finish();
  p.finish();  // idempotent
  std::string out = contents(f);
  EXPECT_EQ(out.rfind("denoise 4/4 [", 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\r'), std::string::npos);
  std::fclose(f);
}

TEST(Progress, TerminalRedrawsInPlace) {
  FILE* f = std::tmpfile();
  ASSERT_TRUE(f);
  {
    Progress p(3, "steps", {.out = f, .interactive = true});
    p.tick();
    p.tick();
    p.tick();
  }
  std::string out = contents(f);
  EXPECT_EQ(out.rfind("\rsteps 0/3 [00:00<?, ?it/s]", 0), 0u) << out;
  EXPECT_NE(out.find("\rsteps 3/3 ["), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(out.back(), '\n');
  std::fclose(f);
}

TEST(Progress, RejectsNegativeTotal) { EXPECT_THROW(Progress(-1, "x"), Error); }
