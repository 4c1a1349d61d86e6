package stopwait

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Faults makes the client's channel faulty, as the seed's client did: each
// transmission (first sends and retransmissions alike) independently gets
// at most one fault, drawn with the given probabilities. All zero (the
// default) means a clean channel. TCHAU is never faulted.
type Faults struct {
	Corrupt  float64       // one message byte changed (or, for an empty message, one checksum digit): the CRC fails
	WrongSeq float64       // sent with a seq 2 to 9 ahead, which the server can never expect
	Drop     float64       // not sent at all
	Delay    float64       // sent late, by up to MaxDelay, while the timer already runs (may arrive after a retransmission)
	MaxDelay time.Duration // longest delay; default 2×the retransmission timeout
	Seed     uint64        // the same seed and input give the same faults
}

// SeedFaults is the seed's channel: half the frames faulty, a quarter of
// those of each kind.
func SeedFaults(seed uint64) Faults {
	return Faults{Corrupt: 0.125, WrongSeq: 0.125, Drop: 0.125, Delay: 0.125, Seed: seed}
}

// Validate checks that the shares are probabilities that sum to at most 1.
func (f Faults) Validate() error {
	sum := 0.0
	for _, p := range []float64{f.Corrupt, f.WrongSeq, f.Drop, f.Delay} {
		if p < 0 || p > 1 || p != p {
			return fmt.Errorf("fault share %v: %w", p, errBadShare)
		}
		sum += p
	}
	if sum > 1 {
		return fmt.Errorf("fault shares sum to %v: %w", sum, errBadShare)
	}
	if f.MaxDelay < 0 {
		return fmt.Errorf("max delay %v: %w", f.MaxDelay, errBadShare)
	}
	return nil
}

var errBadShare = errors.New("must be between 0 and 1, in total too")

type fault int

const (
	faultNone fault = iota
	faultCorrupt
	faultWrongSeq
	faultDrop
	faultDelay
)

func (f fault) String() string {
	return [...]string{"none", "corrupt", "wrong seq", "drop", "delay"}[f]
}

func (f Faults) pick(rng *rand.Rand) fault {
	r := rng.Float64()
	for _, c := range []struct {
		p float64
		k fault
	}{{f.Corrupt, faultCorrupt}, {f.WrongSeq, faultWrongSeq}, {f.Drop, faultDrop}, {f.Delay, faultDelay}} {
		if r < c.p {
			return c.k
		}
		r -= c.p
	}
	return faultNone
}

// corrupt returns fr's line with one byte changed so that the CRC fails
// (CRC-32 catches every single-byte error); the result is still one line.
func corrupt(fr Frame, rng *rand.Rand) string {
	if fr.Message == "" {
		sum := []byte(fmt.Sprintf("%08x", fr.Checksum))
		i := rng.IntN(len(sum))
		sum[i] = "0123456789abcdef"[(hexVal(sum[i])+1+rng.IntN(15))%16]
		return fmt.Sprintf("%d %s ", fr.Seq, sum)
	}
	msg := []byte(fr.Message)
	i := rng.IntN(len(msg))
	// A printable byte other than the one there: never a line break.
	b := byte('!' + rng.IntN('~'-'!'))
	if b >= msg[i] && msg[i] >= '!' && msg[i] <= '~' {
		b++
	}
	msg[i] = b
	return fmt.Sprintf("%d %08x %s", fr.Seq, fr.Checksum, msg)
}

func hexVal(c byte) int {
	if c >= 'a' {
		return int(c-'a') + 10
	}
	return int(c - '0')
}
