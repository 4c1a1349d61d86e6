// Package chat is the TCP chat server and client (seeds 003 and the TCP
// half of 004, docs/PROTOCOLS.md section 4 and its 4.1; default port 5002).
//
// # What the client sends
//
// UTF-8 text, one line per nickname, message or command, except the raw
// bytes of an upload. A line ends in "\n" ("\r\n" accepted) or, leniently,
// at a pause of 200 ms (Config.Pause) with no newline, as a student's
// send(b"alice") leaves it; a "\n" right after such a line is its late
// terminator, and a client that has used a newline is held to newlines
// (wire.MessageReader). Lines are at most 4096 bytes (-max-line).
//
// The server sends nothing on connect. The client's first line is its
// nickname: 1–32 ASCII letters, digits, "_" or "-", not reserved (below).
// Each nickname line gets one reply: an ERROR, after which the client may
// try again (10 tries within 30 s), or "* <nick> joined", the newcomer's
// confirmation and always its first line once joined:
//
//	ERROR nickname taken
//	ERROR empty nickname
//	ERROR nickname longer than 32 characters
//	ERROR nickname may contain only letters, digits, '_' and '-'
//	ERROR nickname may not start with the reserved word "OK"
//
// After joining, a line is a message, sent to every other member as
// "<nick>: <text>" ("//text" sends "/text"; blank lines are ignored), or a
// command, which gets exactly one reply, in order:
//
//	/who                      the nicknames, sorted, one a line, then "."
//	/msg <nick> <text>        "OK sent to <nick>" (<nick> gets "[private] <sender>: <text>"),
//	                          or "ERROR no such nickname <nick>"
//	/upload <name> <size>     + <size> raw bytes → "OK <sha256-hex>" or "ERROR <reason>"
//	/files                    the shared file names, sorted, one a line, then "."
//	/download <name>          "FILE <name> <size>" + <size> raw bytes, or "ERROR <reason>"
//	/get <name> [seed|sack]   "UDP <port> <size> <sha256>" and the file over reliable
//	                          UDP on that port (section 5, get.go, package proto/rudp),
//	                          or "ERROR <reason>", once a GetHandler is set; until
//	                          then NotAvailableGet
//	/quit                     "BYE", then the server closes the connection
//
// Other "/" words get "ERROR unknown command …". "* <nick> joined" and
// "* <nick> left" go to the others; leaves are announced whatever the cause.
//
// # What the server sends: the framing
//
// Every server line is a chat line ("<nick>: <text>", "[private] <nick>:
// <text>", "* <nick> joined|left"), a reply line (its first word is one of
// ReplyWords: OK, ERROR, FILE, UDP, BYE; FILE's bytes follow it at once),
// or a line of a listing (entries up to "."). Classify tells them apart by
// framing alone. Chat never lands inside a reply; each reply is written
// alone in one write. Besides replies and chat a client only receives one
// ERROR just before the server closes the connection (idle timeout, queue
// overflow, a line over 64 MiB, a trickling upload, …). So a client hands
// each reply to the oldest command still awaiting one (Client does).
//
// Reserved (ValidateNick, ValidateFileName): a nickname or file name may
// not start with a reply word in capitals, have one as its first word in
// any case, or start with "*", "[" or "."; a file name may not start with
// "<word>:" either. So no chat line reads as a reply and no listing entry
// reads as chat, a reply or the ".". Files with such names put in the
// folder by hand are neither listed nor served.
//
// Control characters are escaped, not refused: message and /msg text, and
// client data echoed in an ERROR, go through Escape (wire.Escape — C0, DEL
// and C1 as Go escapes, invalid bytes as \xHH, backslash as \\ — plus the
// bidirectional and line-separator controls as \uHHHH), as does what the
// server prints on Out.
//
// File names and uploads follow the file store (proto/internal/filestore):
// flat folder, os.Root, no links out, only regular files served and opened
// without blocking (a FIFO gets "ERROR not a regular file"), hidden temp
// file renamed into place, nothing left by an upload cut short or longer
// than announced (a client must wait for OK before sending more; bytes
// within 25 ms of the payload mean "ERROR upload longer than announced;
// closing"), payload of a refused name skipped, a size over the 1 GiB limit
// closes the connection.
//
// # Ordering and slow readers
//
// Each member has one outbound queue, bounded in bytes (1 MiB,
// -queue-bytes; each line counts its length plus 64), drained by its own
// writer goroutine, and each member's lines are handled in order by one
// reader goroutine, so per-sender order holds for every receiver. Messages
// from different senders may interleave differently at different
// receivers; joins and leaves reach exactly the members present at the
// time. Broadcast never waits on a member that does not read: when a
// member's queue is full and its socket has taken no bytes for 20 ms, it
// is disconnected at once ("ERROR disconnected: outbound queue overflow
// (reading too slowly)" if that still fits; the room sees "* <nick> left").
// Only when its socket takes bytes and the server's CPU is what lags does
// the sender yield to it, for at most 100 ms.
//
// # Timeouts and limits
//
// 100 connections at once (-max-clients; beyond: "ERROR server full, try
// later", close). 30 s to choose a nickname ("ERROR no nickname in time").
// Once joined, each whole line must arrive within the idle timeout of 10 min
// ("ERROR idle timeout", then the client leaves). A line over the limit is
// read to its end and answered "ERROR line too long (limit 4096 bytes)"
// (nickname phase: "ERROR nickname longer than 32 characters"); one still
// going after 64 MiB gets "ERROR line too long (limit 4096 bytes); closing
// after 67108864 bytes" and the close, gently (half-close and a short
// drain, so the ERROR is not lost to a reset). Transfers: 30 s per read or
// write, and a sliding-window minimum rate (-min-rate 4096 B/s over every
// -rate-window of 10 s, after one window of grace) for uploads, accepted or
// refused ("ERROR upload too slow …; closing"), and downloads. Leaving, the
// queue is flushed within 30 s.
//
// # Client
//
// The client prints every line that arrives while input is sent (a reader
// goroutine and an input loop), through Printable, so no control character
// it receives reaches the terminal. It reads replies by the framing only:
// each command it sends is registered before it is written, and each reply
// goes to the oldest one waiting (it reads the server's lines leniently
// too: ClientConfig.Pause); a FILE line is a download header only as the
// reply to a /download, and lines are listing entries only as the reply
// to a /who or /files — never chat, never inside a listing. Downloads are saved into the
// download folder, with "saved PATH (n bytes, sha256 HEX)". Client.Command
// sends a command and returns its reply the same way. Client.Run
// reads lines from a script or standard input; besides lines for the
// server it knows "/upload PATH [NAME]" (a local file), "/sleep DURATION"
// and "/wait TEXT" (until a received line contains TEXT) for labs, refuses
// lines over MaxLine locally (they would get an ERROR that is no command's
// reply), and sends /quit at the end.
package chat
