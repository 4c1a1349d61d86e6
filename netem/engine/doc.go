// Package engine is the userspace impairment backend: each link is a TAP
// device at each end, joined by one engine process per lab that decides
// every packet's fate (seeded, per flow), queues it at the link's rate and
// delay, and writes it to the other end when it is due. Beyond what the
// kernel backend does it plays scripted faults (netem.Faulter), captures
// links (netem.Capturer) and counts drops by cause (netem.Counter).
//
// The backend is given what it needs (Options: the lab, its folder, seed
// and size, how to launch the engine process); it starts and stops that
// process itself (netem.Runner). The engine process (Serve) reads only
// what Start wrote in the lab's folder and answers a control socket there.
//
// Files: backend_linux.go (the Backend and its capabilities), tap_linux.go
// (TAP devices), engine_linux.go (the engine's life), dir_linux.go (one
// direction: fates, rate queue, delay line, writer), fate.go (seeded
// draws), frame.go (virtio/Ethernet/IP parsing, super-frame splitting,
// checksums), faults_linux.go, capture_linux.go, ctl_linux.go (the control
// socket and the counters).
package engine
