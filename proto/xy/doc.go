// Package xy is the X/Y ordering lab (seed 001, PROTOCOLS.md §1): two
// clients connect to a server; the first to connect is X, the second Y; each
// sends its name; the server tells both whose message arrived first.
//
// # Wire format
//
// UTF-8 text lines ending in "\n"; "\r\n" is accepted too. Default TCP port
// 12000.
//
//	server → each client, once both are connected:
//	    Client X connected          (to the first client to connect)
//	    Client Y connected          (to the second)
//	client → server, one line:
//	    Client X: Alice             (or "Client Y: Bob", by the letter it was given)
//	server → both clients, after both messages arrived:
//	    X: Alice received before Y: Bob   (or "Y: Bob received before X: Alice")
//
// The order in the acknowledgment is the order in which the *messages*
// arrived at the server, never the order of connection.
//
// Server output (stdout): "Server is started" once listening; each valid
// message line ("Client X: Alice") as it arrives; "Sent acknowledgment to
// both X and Y" after each acknowledgment. Diagnostics go to the logger.
// By default the server exits after the first acknowledged pair (the seed);
// with ServeForever (--serve-forever) it serves pair after pair, several
// pairs at once.
//
// Client output (stdout): the "Client X connected" line, the line it sent,
// then the server's reply (the acknowledgment or an ERROR line).
//
// # Choices where PROTOCOLS.md is silent
//
//   - Message syntax: the line must begin with exactly "Client <letter>:"
//     using the letter the server gave that client; the name is the rest of
//     the line with blanks (space, tab) around it ignored. The name must be
//     non-empty valid UTF-8 without control characters.
//   - Lines are at most MaxLine (4096) bytes, not counting the terminator.
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
//   - Only the first line from each client is read; anything after it is
//     ignored. A client that leaves after sending a valid message does not
//     spoil the pair: its partner still gets the acknowledgment, but the
//     server prints "Sent acknowledgment to both X and Y" (and, by default,
//     exits) only if the line could be sent to both.
//   - At most MaxClients (default 128) connections are held at once; beyond
//     that the server stops accepting until one closes (the kernel's listen
//     backlog holds newcomers).
//   - On shutdown (context cancelled, SIGINT/SIGTERM in the CLI) every
//     connected client gets "ERROR server shutting down".
package xy
