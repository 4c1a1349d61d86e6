// Package rudp is the reliable file download over UDP of seed 004 (the
// chat's /get): a three-way handshake (SYN, SYN-ACK carrying the size,
// ACK), DATA segments with a CRC-32C, a segment id and the payload, per-
// datagram ACKs (SACK: the ids held) and NACKs (bad checksum), and an
// ACK-ALL with the receiver's SHA-256. The header is versioned and laid out
// byte by byte in docs/PROTOCOLS.md section 5.
//
// Send and Download take a net.PacketConn, so both sides run on loopback
// in unit tests; Server and Fetch add the chat's port pool and the
// "UDP <port> <size> <sha256>" reply. Two sender algorithms: AlgoSeed (the
// seed's KB segments adapted by ACK/NACK, made to always finish) and
// AlgoSACK (MTU segments, SACK ranges, pacing at the delivery rate, random
// loss not read as congestion; see sack.go for how a queue is told apart).
//
// Bounds: the receiver holds a bitmap of Window ids (1 KB by default) and
// writes segments straight to a hidden temp file; the sender keeps one
// record per id in flight (at most Window) and one per transmission in the
// last RTO (at most 4 Window); the sender's inbox holds 1024 datagrams
// (more are dropped and counted). Memory does not grow with the file.
package rudp
