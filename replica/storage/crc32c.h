/*
 * replica/storage/crc32c.h — CRC-32C (Castagnoli), the checksum of WAL records.
 *
 * Castagnoli rather than the zlib CRC-32 because it detects more error
 * patterns at the record sizes we write and is what other logs use (ext4,
 * iSCSI, LevelDB), so tools exist to check our files by hand.
 */
#ifndef REPLICA_CRC32C_H
#define REPLICA_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend `crc` (0 to start) with len bytes of buf and return the new value.
 * Chainable: crc32c(crc32c(0, a, n), b, m) == crc32c(0, a || b, n + m).
 * crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The same, always with the portable table (tests compare the two). */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
