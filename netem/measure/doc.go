// Package measure measures live links and judges them against their
// Specs, whatever the backend: UDP probes between a link's two ends (one
// clock for both, so one-way delay is measured directly), a bounded TCP
// transfer for the rate, the predictions and tolerances of each line, and
// Verify, the body of `labctl verify` (the CLI only parses flags and
// prints).
package measure
