// Package stopwait is the stop-and-wait reliable messaging lab (seed 000,
// PROTOCOLS.md §2): a client sends messages one at a time over a channel
// that may corrupt, reorder, drop or delay them; the server delivers each
// exactly once, in order.
//
// # Wire format
//
// UTF-8 text lines ending in "\n" ("\r\n" accepted). Default port 9000.
// Over TCP a frame (or TCHAU) sent without a newline ends at a pause of
// Pause (default 200 ms, --pause; negative: lines only), as a student's
// send() without "\n" does; the reference client reads the server's
// replies the same way. Once a peer has ended a frame with a newline, only
// newlines end its frames, so a long frame delayed part-way by a lost
// segment is not cut in two. Over UDP a datagram is one frame.
//
//	client → server:  <seq> <checksum> <message>
//	                  TCHAU
//	server → client:  ACK <seq>
//	                  NACK <seq>
//	                  BYE
//	                  ERROR <reason>
//
// seq counts from 0 per session, in canonical decimal ("0", or digits with
// no leading zero, at most 2^64-1). checksum is CRC-32 (IEEE) of the
// message bytes as exactly 8 lowercase hex digits. The message is the rest
// of the line after the second space, byte for byte (it may hold spaces or
// be empty). A frame is at most MaxFrame (8192) bytes without its line
// terminator, so a message is at most MaxMessage bytes.
//
// The server keeps, per session, the next seq it expects:
//
//   - seq is the expected one and the checksum matches: it prints the
//     message (stdout, one line) and answers ACK <seq>;
//   - seq is below the expected one (a retransmission whose ACK was lost
//     or late) and the checksum matches: ACK <seq> again, not delivered
//     twice;
//   - otherwise — checksum mismatch, seq ahead, or a readable seq followed
//     by anything that is not " <8 lowercase hex> <message>" — NACK <seq>,
//     echoing the seq the frame carried;
//   - a line that does not begin with a seq: "ERROR bad sequence number: …";
//   - TCHAU: BYE, and the session ends.
//   - a frame whose message is exactly TCHAU, with the expected seq and a
//     matching checksum (a client may frame the word like any message):
//     ACK <seq>, not delivered, and the session ends as with the bare line.
//     Over UDP, that frame retransmitted after the session ended is ACKed
//     again.
//
// The server prints "Server is started" once listening, then each delivered
// message on one line, nothing else; diagnostics go to the logger. A
// delivered message is printed through wire.Escape: control characters (a
// "\n" in a datagram, CR, ESC, tab …) as Go escapes ("\n", "\r", "\x1b",
// "\t"), invalid UTF-8 bytes as "\xHH" and a backslash as "\\", so one
// message is always one line and cannot move the cursor of the terminal
// (or labctl logs) that shows it. The escaped line reads back exactly.
//
// # Client
//
// The client reads input lines (stdin or arguments), splits each on "||",
// trims blanks around each message and skips empty ones. A message that is
// exactly TCHAU ends the session (what follows it is not sent); so does
// the end of the input. For each message it sends the frame and starts a
// timer (Timeout, default 1 s). ACK <seq> delivers it; NACK with the seq of
// the latest transmission, an ERROR line, or the timer sends it again.
// Other replies (late answers to earlier transmissions) are ignored. After
// MaxTries transmissions (default 10) it gives up with ErrGaveUp. It prints
// one line per message, `delivered <seq> "<message>" (<n> tries)` or
// `not delivered <seq> "<message>" (<n> tries)`, and "BYE" at the end.
// TCHAU is retransmitted on the same timer until BYE arrives.
//
// Simulated faults (Faults, off by default, seeded): each transmission
// independently is sent corrupted (one message byte changed, so the CRC
// fails), with a wrong seq (2 to 9 ahead: a seq the server can never
// expect, so it is NACKed and never mistaken for the next message), not at
// all (dropped), or late (delayed up to MaxDelay while the timer already
// runs, so it may arrive after its own retransmission and be ACKed as a
// duplicate). Delayed frames are all sent before TCHAU. SeedFaults is the
// seed's channel: 50 % of frames faulty, 12.5 % of each kind.
//
// # TCP
//
// One connection is one session. It ends with TCHAU (BYE, then the server
// closes), when the client closes, or after IdleTimeout (default 60 s)
// without a line ("ERROR idle timeout (no frame within 1m0s)", then close).
// A line longer than MaxFrame earns "ERROR frame too long (max 8192
// bytes)" and the connection is closed gently (half-close, a brief drain),
// so the line is not lost to a reset — also past the 64 MB the server
// reads of one line before giving up. At most MaxSessions (default 16,
// the seed's max_threads) connections are served at once; beyond that the
// server stops accepting, so a newcomer waits in the kernel's backlog: its
// frames are answered, in order, once a slot frees. Meanwhile its timer
// retransmits (each counting as a try), so it waits up to about
// MaxTries × Timeout before giving up.
//
// # UDP
//
// Each datagram holds exactly one line; the trailing "\n" is optional.
// Replies are one datagram each, sent to the datagram's source address.
//
//   - A session is keyed by the client's address (IP and port). It begins
//     with the first frame from an address that has no session; that
//     frame must carry a readable seq (garbage gets ERROR and opens none).
//     One session is one client socket: a client starts a new session from
//     a new socket (a new ephemeral port).
//   - It ends with TCHAU → BYE. TCHAU from an address with no session is
//     answered BYE too, so a TCHAU retransmitted after a lost BYE still
//     ends cleanly. For EndedAge (default 2 min, --ended-age) after it
//     ended, frames from that address get "ERROR session ended" instead of
//     opening a new session, so a late duplicate is never delivered twice
//     (like TCP's TIME-WAIT). This holds after any number of sessions:
//     records expire by age only, oldest first. The age is safe because a
//     late copy can only come from the network — the client stops at BYE
//     and retransmits a frame for at most MaxTries × Timeout (10 s by
//     default) — and 2 min is twice Linux's TIME-WAIT and far beyond any
//     lab delay or queue; only a seq-0 copy could be mistaken for a new
//     session at all. Memory is bounded by MaxEnded (default 65536 records
//     of about 100 bytes, --max-ended; expired sessions being recorded can
//     pass it by at most MaxSessions): at the bound, frames from new
//     addresses are ignored, as at MaxSessions, until the oldest record
//     ages out — a record is never dropped early. A client that reuses the
//     address of a session ended less than EndedAge ago gets "ERROR session
//     ended" (a new socket takes a new ephemeral port).
//   - It expires after IdleTimeout (default 60 s) without a datagram. If it
//     delivered anything it is then remembered like a session ended by
//     TCHAU (below), so a late copy of its frame 0 is not delivered again;
//     a session that delivered nothing is simply forgotten. A frame from
//     an address with no session and no record opens a new session that
//     expects seq 0.
//   - At MaxSessions, frames from new addresses are ignored without an
//     answer, as a TCP newcomer waits unanswered in the backlog: the
//     client's timer retransmits and it gets in once a session ends or
//     expires.
//   - The client sends with no UDP checksum (DisableUDPChecksum, IPv4
//     SO_NO_CHECK), so a datagram corrupted on the link (netem corrupt)
//     reaches the server's CRC and earns a NACK instead of being dropped
//     by the kernel. Replies keep their UDP checksum: a corrupted reply is
//     dropped, and the client's timer covers it.
//
// Every server stops cleanly when its context is cancelled; TCP clients
// still connected get "ERROR server shutting down".
package stopwait
