// Read-only memory-mapped file. Model loaders read headers and tensors straight from the mapping,
// repack what they need, and hand pages they are done with back to the kernel (release()), so a
// loaded model's resident memory is its packed weights plus the embedding rows decode touches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bitmamba::model {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws FormatError when the file cannot be opened or mapped (names the path and the reason).
  // `what` names the kind of file in those messages ("model file", "state file").
  explicit MappedFile(const std::string& path, const char* what = "model file");
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the resident pages fully inside [offset, offset + n) (clean file pages: they are re-read
  // from disk if touched again, so this is always safe).
  void release(std::uint64_t offset, std::uint64_t n) const;
  // Copies n bytes at offset into dst with pread (no mapping: the pages stay in the page cache and
  // out of this process's resident set). Used for embedding rows: through the mapping, fault-around
  // and large page-cache folios made each random row cost ~0.5-1 MB of RSS. Throws Error on failure.
  void read_at(std::uint64_t offset, std::uint64_t n, void* dst) const;

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
  int fd_ = -1;
};

}  // namespace bitmamba::model
