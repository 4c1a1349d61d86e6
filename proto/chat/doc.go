// Package chat is the TCP chat server and client (seeds 003 and the TCP
// half of 004, docs/PROTOCOLS.md section 4; default port 5002).
//
// # Wire format
//
// UTF-8 text lines ending in "\n" ("\r\n" accepted), except the raw bytes
// of an upload or a download. Lines are at most 4096 bytes (-max-line);
// a longer one is read to its end and answered "ERROR line too long (limit
// 4096 bytes)".
//
// The server sends nothing on connect. The client's first line is its
// nickname: 1–32 ASCII letters, digits, "_" or "-" (so no server line is
// ambiguous). Refusals, after which the client may send another line (up to
// 10 tries within 30 s, then the connection is closed):
//
//	ERROR nickname taken
//	ERROR empty nickname
//	ERROR nickname longer than 32 characters
//	ERROR nickname may contain only letters, digits, '_' and '-'
//
// Once accepted, "* <nick> joined" goes to everyone, the newcomer included:
// it is the newcomer's confirmation and always its first line. "* <nick>
// left" goes to those who remain, whatever the cause of the leave.
//
// After joining, each line is one of:
//
//	<text>                    to every other client as "<nick>: <text>"
//	//<text>                  to every other client as "<nick>: /<text>"
//	                          (the escape for text starting with "/")
//	/who                      the nicknames, sorted, one a line, then "."
//	/msg <nick> <text>        to <nick> only as "[private] <sender>: <text>";
//	                          no reply on success; "ERROR no such nickname <nick>"
//	/upload <name> <size>     + <size> raw bytes → "OK <sha256-hex>"
//	/files                    the shared file names, sorted, one a line, then "."
//	/download <name>          "FILE <name> <size>" + <size> raw bytes, or "ERROR <reason>"
//	/get <name> [seed|sack]   "UDP <port> <size> <sha256>" and the file over reliable
//	                          UDP on that port (section 5, get.go, package proto/rudp),
//	                          or "ERROR <reason>"; without a GetHandler
//	                          "ERROR /get (reliable UDP download) is not available yet"
//	/quit                     "BYE", then the server closes the connection
//
// Blank lines are ignored. Other "/" words get "ERROR unknown command …".
// Every reply goes through the client's outbound queue, so it is ordered
// with the messages around it and a FILE transfer is never split by them.
//
// File names and uploads follow the same rules as the file server (package
// proto/internal/filestore): flat folder, os.Root, no links out, hidden temp
// file renamed into place, nothing left by an upload cut short or longer
// than announced (a client must wait for OK before sending more; bytes
// within 25 ms of the payload mean "ERROR upload longer than announced;
// closing"), payload of a refused name skipped, a size over the 1 GiB limit
// closes the connection.
//
// # Ordering and slow readers
//
// Each client has one outbound queue (1024 items, -queue) drained by its
// own writer goroutine, and each client's lines are handled in order by one
// reader goroutine, so per-sender order holds for every receiver. Messages
// from different senders may interleave differently at different
// receivers; joins and leaves reach exactly the members present at the
// time. When a queue is full the sender waits up to 2 s (-queue-wait) for
// room — the room's flow control, throttling a flooder to the pace of its
// readers. A client that makes no room in that time is disconnected: it is
// sent "ERROR disconnected: outbound queue overflow (reading too slowly)"
// if that still fits (best effort), and the room sees "* <nick> left".
//
// # Timeouts and limits
//
// 100 connections at once (-max-clients; beyond: "ERROR server full, try
// later", close). 30 s to choose a nickname ("ERROR no nickname in time").
// Once joined, each whole line must arrive within the idle timeout of 10 min
// ("ERROR idle timeout", then the client leaves). Transfers: 30 s per read or
// write and 30 s + size/4096 s in all. Leaving, the queue is flushed within 30 s.
//
// # Client
//
// The client prints every line that arrives while input is sent (a reader
// goroutine and an input loop), and saves FILE transfers into the download
// folder, printing "saved PATH (n bytes, sha256 HEX)". Client.Run reads lines
// from a script or standard input; besides lines for the server it knows
// "/upload PATH [NAME]" (a local file), "/sleep DURATION" and "/wait TEXT"
// (until a received line contains TEXT) for labs, and sends /quit at the end.
package chat
