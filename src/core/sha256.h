// SHA-256 (FIPS 180-4), streaming. Keys the engine cache: a cache key must
// not collide by accident, which a 32- or 64-bit checksum cannot promise.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace tessera {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(const std::string& s) { update(s.data(), s.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;  // bytes hashed
};

// Streams the file through `hash` in chunks (models may be gigabytes); errors name the path.
void hash_file(Sha256& hash, const std::string& path);

}  // namespace tessera
