#include "model/mapped_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

namespace bitmamba::model {

MappedFile::MappedFile(const std::string& path, const char* what) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  BM_CHECK(fd >= 0, FormatError, "cannot open ", what, " '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FormatError(detail::concat(what, " '", path, "' is not a regular file"));
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw FormatError(detail::concat("cannot memory-map ", what, " '", path, "': ", std::strerror(e)));
    }
    data_ = static_cast<const std::uint8_t*>(p);
  }
  fd_ = fd;  // kept for read_at
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void MappedFile::release(std::uint64_t offset, std::uint64_t n) const {
  if (!data_ || offset >= size_) return;
  if (n > size_ - offset) n = size_ - offset;
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::uint64_t begin = (offset + page - 1) / page * page;
  std::uint64_t end = (offset + n) / page * page;
  if (end <= begin) return;
  ::madvise(const_cast<std::uint8_t*>(data_) + begin, end - begin, MADV_DONTNEED);
}

void MappedFile::read_at(std::uint64_t offset, std::uint64_t n, void* dst) const {
  BM_CHECK(offset <= size_ && n <= size_ - offset, Error, "read past the end of '", path_, "'");
  auto* out = static_cast<std::uint8_t*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    BM_CHECK(got > 0, Error, "cannot read '", path_, "': ", got < 0 ? std::strerror(errno) : "file shrank");
    out += got;
    offset += static_cast<std::uint64_t>(got);
    n -= static_cast<std::uint64_t>(got);
  }
}

}  // namespace bitmamba::model
