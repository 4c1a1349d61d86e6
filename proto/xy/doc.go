// Package xy is the X/Y ordering lab (seed 001, PROTOCOLS.md §1): two
// clients connect to a server; the first to connect is X, the second Y; each
// sends its name; the server tells both whose message arrived first.
//
// # Wire format
//
// UTF-8 text. Default TCP port 12000. A message is a line ending in "\n"
// ("\r\n" accepted), or whatever arrived before a pause of Pause (default
// 200 ms, --pause; negative: lines only) without a newline, as a student's
// send(b"Alice") does; a "\n" arriving right after such a message is its
// late terminator and is skipped. Once a peer has ended a message with a
// newline, only newlines end its messages (wire.MessageReader).
//
//	server → each client, once both are connected:
//	    Client X connected          (to the first client to connect)
//	    Client Y connected          (to the second)
//	client → server, one message, in either form:
//	    Client X: Alice             (the seed's text, by the letter it was given)
//	    Alice                       (the seed's figures: the name alone)
//	server → both clients, after both messages arrived:
//	    X: Alice received before Y: Bob   (or "Y: Bob received before X: Alice")
//
// Every line the server sends ends in "\n" and is written in one write of
// at most MaxReply (1024) bytes, so a client's recv(1024) reads it whole.
//
// The order in the acknowledgment is the order in which the *messages*
// arrived at the server, never the order of connection.
//
// Server output (stdout): "Server is started" once listening; each valid
// message, in the text's form ("Client X: Alice") whichever form it came
// in, as it arrives; "Sent acknowledgment to both X and Y" after each
// acknowledgment has been written to both clients; LeftLine ("A waiting
// client left before a partner connected; forgotten") when a lone client
// leaves. Names are printed through wire.Escape (control characters as Go
// escapes, a backslash doubled; see docs/PROTOCOLS.md §1), although names
// holding control characters are refused anyway. Diagnostics go to the
// logger.
// By default the server exits after the first acknowledged pair (the seed);
// with ServeForever (--serve-forever) it serves pair after pair, several
// pairs at once.
//
// Client output (stdout): the "Client X connected" line, the message it
// sent, then the server's reply (the acknowledgment or an ERROR line), each
// escaped by wire.Escape. It reads the server's lines as the server reads
// messages (a line or a pause), and takes any line naming exactly one of
// "Client X" and "Client Y" as its letter ("From Server: Client X
// connected"). Bare (--bare) sends the figures' form: the name alone,
// without a newline.
//
// # Choices where PROTOCOLS.md is silent
//
//   - Message syntax: a message that begins with exactly "Client X:" or
//     "Client Y:" (case-sensitive) has that prefix stripped, and must use
//     the letter the server gave that client ("ERROR bad message: you are
//     client X, not Y"); any other message is the name as a whole. Blanks
//     (space, tab) around the name are ignored. The name must be non-empty
//     valid UTF-8 without control characters, at most MaxName (500) bytes:
//     two such names and the fixed words of the acknowledgment, with its
//     "\n", fit MaxReply (1024) bytes, so a name the server accepts yields
//     an acknowledgment every client accepts (the reference client checks
//     the same limit before sending).
//   - Messages are at most MaxLine (4096) bytes, not counting the
//     terminator; a longer one (of any length: it is read and dropped up to
//     64 MB, then the connection is given up) earns the line-too-long ERROR.
//   - Every failure ends the pair without an acknowledgment, and each client
//     that is still connected gets exactly one ERROR line, then is closed:
//     the client at fault gets its own reason
//     ("ERROR bad message: expected \"Client X: <name>\"",
//     "ERROR line too long (max 4096 bytes)", "ERROR no message within 1m0s");
//     its partner gets "ERROR client <letter> <sent a bad message | sent a
//     line too long | sent nothing within 1m0s | left>; pair not acknowledged".
//     A failed pair never stops the server: by default it keeps pairing new
//     clients until one pair is acknowledged.
//   - A paired client has IdleTimeout (default 60 s) to send its message.
//     A lone first client waits up to WaitTimeout (default 5 min) for a
//     partner, then gets "ERROR no partner connected within 5m0s". A lone
//     client that disconnects while waiting is forgotten at once, so the
//     next client to connect becomes X.
//   - A client that sends its line before "Client X connected" (against the
//     protocol) is not refused: its line is read once the pair forms, and
//     arrival order is then the order in which the server reads the lines.
//   - Only the first message from each client counts; anything after it is
//     ignored (a waiting client's next 16 messages are read and dropped, so
//     its leaving is still seen at once; beyond that, or after an
//     over-long one, it is not read until its pair forms). A client that leaves after sending a valid message does not
//     spoil the pair: its partner still gets the acknowledgment, but the
//     server prints "Sent acknowledgment to both X and Y" (and, by default,
//     exits) only if the line could be sent to both.
//   - At most MaxClients (default 128) connections are held at once; beyond
//     that the server stops accepting until one closes (the kernel's listen
//     backlog holds newcomers).
//   - On shutdown (context cancelled, SIGINT/SIGTERM in the CLI) every
//     connected client gets "ERROR server shutting down".
package xy
