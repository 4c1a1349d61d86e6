// Package filesvc is the CP372 file server and its client (seed 002,
// docs/PROTOCOLS.md section 3; default port 12345).
//
// # Wire format
//
// UTF-8 text lines ending in "\n" ("\r\n" accepted), except the raw bytes
// of a transfer. A command sent without a newline ends at a pause of 200 ms
// (-pause; negative: lines only), as a student's send() without "\n" does;
// once a client has ended a command with a newline, only newlines end its
// commands. The reference client reads the server's lines the same way.
// Replies that span several lines end with a line holding only ".".
//
// On connect the server sends one line: the client's name, "Client01",
// "Client02", … ("Client%02d": Client100 follows Client99). Names are never
// reused while the server runs, and with a connection log they continue
// after the highest name in it across restarts. A client beyond the cap of
// concurrent clients (default 3) gets "Server full, try later" instead, and
// the connection is closed; refused clients get no name.
//
// Commands, one a line. Command words are lower case and match with
// surrounding spaces ignored:
//
//	status            one line per client ever connected, oldest first, then "."
//	list              the repository's file names, one a line (sorted), then "."
//	get <name>        "START <size>", exactly <size> raw bytes, "END"; or "ERROR <reason>"
//	put <name> <size> followed by exactly <size> raw bytes → "OK <sha256-hex>"
//	exit              "BYE", then the server closes; status records the disconnect
//	anything else     "<text> ACK" (the line as received, escaped)
//
// The echo passes the text through wire.Escape: control characters as Go
// escapes ("\r", "\x1b", "\t" …) and a backslash as "\\", so a client
// cannot make the server send (or the reference client print) a terminal
// control sequence. The reference client escapes every line it prints.
//
// Status lines are three fields separated by single spaces:
//
//	<name> <connected-at> <disconnected-at|active>
//	Client01 2025-02-10T14:03:07Z 2025-02-10T14:05:41Z
//	Client02 2025-02-10T14:04:12Z active
//
// Times are RFC 3339 in UTC with whole seconds. A client still shown as
// connected in the log of a server that crashed is closed at the restart
// time (the true time is unknown).
//
// Errors are one line "ERROR <reason>"; the connection stays usable unless
// said below. An empty line gets "ERROR empty line", invalid UTF-8 "ERROR
// line is not valid UTF-8", a line over 4096 bytes (-max-line) "ERROR line
// too long (limit 4096 bytes)" after it has been read to its end. A line
// still going after 64 MB is not read further: "ERROR line too long (limit
// 4096 bytes); closing after 67108864 bytes", then the server half-closes
// and drains for at most 500 ms (4 MB) before closing, so the line is not
// destroyed by a reset.
//
// # Names
//
// The repository is flat. A name is 1–255 bytes of UTF-8 with no "/" or
// "\", no control characters, no leading or trailing space and no leading
// "." (so no ".", "..", hidden files or upload temp files). Files are opened
// through os.Root, so symbolic links are followed only while they stay
// inside the repository ("ERROR name leads outside the repository"
// otherwise); list shows only regular files (and links to them inside).
// get serves only regular files: it opens with O_NONBLOCK and then checks
// the type, so a FIFO, device or socket in the folder (or a link to one)
// gets "ERROR not a regular file" at once and can neither block the
// session in open nor hold up SIGTERM.
// get errors: "no such file", "not a regular file", "name leads outside the
// repository", or the name rule broken.
//
// # Uploads
//
// put writes to a hidden temp file (".upload-<random>.part"), fsyncs it and
// renames it over <name>: the listing shows the whole file or nothing, and
// an existing file of that name is replaced atomically. Then:
//
//   - A put whose size parses but whose name is refused: the server reads
//     and drops the <size> bytes, then replies ERROR (still in step).
//   - A size that is not a decimal number: ERROR; no payload is assumed.
//   - A size over the limit (1 GiB, -max-file-size): ERROR and the
//     connection is closed, because the bytes cannot be skipped.
//   - Cut short (the client closes, stalls or trickles): the temp file is
//     removed, "ERROR upload timed out" on a stall or "ERROR upload too slow
//     (under 4096 bytes/s over 10s); closing" on a trickle, and the
//     connection is closed. The same holds while the payload of a refused
//     put is being skipped.
//   - Longer than announced: a client must wait for the reply to put
//     before sending anything else, so any byte arriving within 25 ms after
//     the payload (or in the same segment) means the upload was longer than
//     announced: "ERROR upload longer than announced; closing", nothing is
//     stored, the connection is closed.
//
// # Timeouts and limits
//
//   - A whole command line must arrive within the idle timeout (5 min) of
//     the previous reply, however it trickles in: "ERROR idle timeout", close.
//     (A trickle slower than the pause is cut into messages at the pauses,
//     each answered like any short command.)
//   - During transfers and replies each read or write gets 30 s
//     (-io-timeout). Every payload — a put, the skipped payload of a
//     refused put, a get — must also move at least -min-rate (4096 B/s)
//     over every -rate-window (10 s), after one window of grace
//     (wire.MinRate), whatever size it announced: a trickle is cut about a
//     window after it starts, so it cannot hold one of the slots.
//   - Refused clients get their one line inline on the accept loop under a
//     1 s write deadline, so a flood of connections cannot starve admitted
//     clients; a vanishing client frees its slot as soon as a read or write
//     fails.
//
// # Connection log
//
// With a log path, every connect and disconnect is appended as one JSON
// object per line, e.g.
//
//	{"event":"connect","client":"Client01","time":"2025-02-10T14:03:07.1Z","remote":"10.0.0.2:40112"}
//	{"event":"disconnect","client":"Client01","time":"2025-02-10T14:05:41.3Z","reason":"exit"}
//
// A torn last line is skipped on load. The CLI keeps the log in a state
// folder, never in the repository.
//
// # Client
//
// Client speaks the protocol; Client.Run drives it from command lines
// (scripted) or standard input (interactive): lines go to the server as
// typed, except "get NAME", which saves NAME into the download folder and
// prints "START n", "END", "saved PATH (n bytes, sha256 HEX)", and
// "put PATH [NAME]", which uploads a local file and checks the returned
// SHA-256. Run sends exit when its input ends.
package filesvc
