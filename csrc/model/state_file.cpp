#include "model/state.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <fcntl.h>
#include <unistd.h>

#include "core/error.h"
#include "model/mapped_file.h"

namespace bitmamba::model {

namespace {
constexpr char kStateMagic[8] = {'B', 'M', 'S', 'T', 'A', 'T', 'E', '1'};

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

void State::save(const std::string& path) const {
  std::vector<std::uint8_t> buf;
  auto put = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  };
  put(kStateMagic, 8);
  std::int64_t hdr[7] = {n_layers, conv_rows, conv_dim, ssm_size, vocab, n_tokens, has_logits ? 1 : 0};
  put(hdr, sizeof(hdr));
  put(conv.data(), conv.size() * 4);
  put(ssm.data(), ssm.size() * 4);
  put(logits.data(), logits.size() * 4);
  std::uint64_t h = fnv1a(buf.data(), buf.size());
  put(&h, 8);
  // Atomic replace: the bytes go to a new file beside `path`, flushed to disk, and only then renamed
  // over it, so a failed or interrupted save (disk full, killed process) leaves the previous state
  // file as it was. Every step is checked with plain POSIX calls: a buffered stream reports a failed
  // flush only from its destructor, and the truncated file would then have replaced the good one.
  // The temporary name is unique per process and call (O_EXCL), so concurrent saves cannot collide.
  static std::atomic<unsigned> counter{0};
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = dir + "." + base + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + ".tmp";
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt >= 100))
      throw Error(detail::concat("cannot write state file '", path, "': ", std::strerror(errno)));
  }
  auto fail = [&](const char* step) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(detail::concat("cannot ", step, " state file '", path, "': ", std::strerror(e)));
  };
  const std::uint8_t* p = buf.data();
  std::size_t left = buf.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      fail("write");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("write");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(detail::concat("cannot write state file '", path, "': ", std::strerror(e)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(detail::concat("cannot replace state file '", path, "': ", std::strerror(e)));
  }
}

State State::load(const std::string& path) {
  MappedFile f(path, "state file");
  const std::uint64_t hdr_bytes = 8 + 7 * 8;
  BM_CHECK(f.size() >= 8, FormatError, "state file '", path, "' is truncated (", f.size(), " bytes)");
  BM_CHECK(std::memcmp(f.data(), kStateMagic, 8) == 0, FormatError, "'", path,
           "' is not a bitmamba state file (no BMSTATE1 magic)");
  BM_CHECK(f.size() >= hdr_bytes + 8, FormatError, "state file '", path, "' is truncated (", f.size(),
           " bytes)");
  std::int64_t h[7];
  std::memcpy(h, f.data() + 8, sizeof(h));
  for (int i = 0; i < 5; ++i)
    BM_CHECK(h[i] >= 0 && h[i] <= (std::int64_t{1} << 26), FormatError, "state file '", path,
             "' is corrupt (bad shape field ", i, ")");
  BM_CHECK(h[5] >= 0 && (h[6] == 0 || h[6] == 1), FormatError, "state file '", path, "' is corrupt (bad header)");
  // With each field up to 2^26, n_layers * (conv + ssm) could wrap around 64 bits and so pass the
  // size check below: such a header is refused before it is multiplied out.
  const std::uint64_t per_layer = static_cast<std::uint64_t>(h[1]) * h[2] + h[3];
  const std::uint64_t max_floats = std::numeric_limits<std::uint64_t>::max() / 8;
  BM_CHECK(h[0] == 0 || per_layer <= max_floats / static_cast<std::uint64_t>(h[0]), FormatError, "state file '",
           path, "' is corrupt (its header describes an impossibly large state)");
  const std::uint64_t n_floats = static_cast<std::uint64_t>(h[0]) * per_layer + h[4];
  const std::uint64_t want = hdr_bytes + 4 * n_floats + 8;
  BM_CHECK(f.size() >= want, FormatError, "state file '", path, "' is truncated (", f.size(),
           " bytes, its header describes ", want, ")");
  BM_CHECK(f.size() == want, FormatError, "state file '", path, "' is corrupt (", f.size(),
           " bytes, its header describes ", want, ")");
  std::uint64_t stored;
  std::memcpy(&stored, f.data() + f.size() - 8, 8);
  BM_CHECK(fnv1a(f.data(), f.size() - 8) == stored, FormatError, "state file '", path, "' is corrupt (checksum mismatch)");
  State s;
  s.n_layers = h[0], s.conv_rows = h[1], s.conv_dim = h[2], s.ssm_size = h[3], s.vocab = h[4];
  s.n_tokens = h[5];
  s.has_logits = h[6] == 1;
  const float* p = reinterpret_cast<const float*>(f.data() + hdr_bytes);
  s.conv.assign(p, p + s.n_layers * s.conv_rows * s.conv_dim);
  p += s.conv.size();
  s.ssm.assign(p, p + s.n_layers * s.ssm_size);
  p += s.ssm.size();
  s.logits.assign(p, p + s.vocab);
  return s;
}

}  // namespace bitmamba::model
