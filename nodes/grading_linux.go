package nodes

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// Grading marks a lab as one submission's lab of a `labctl grade` run, so
// `status` can say which grading a lab belongs to and a later run can take
// down what a crashed one left, and nothing else.
type Grading struct {
	Name       string `json:"name"`
	Submission string `json:"submission"`
	PID        int    `json:"pid"` // the labctl grade process
	StartTime  uint64 `json:"start_time"`
}

func gradingPath(lab string) string { return filepath.Join(Dir(lab), "grading.json") }

// MarkGrading records that lab belongs to a grading run by this process.
func MarkGrading(lab, grading, submission string) error {
	g := Grading{Name: grading, Submission: submission, PID: os.Getpid(), StartTime: procStartTime(os.Getpid())}
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return writeFileAtomic(gradingPath(lab), b, 0o644)
}

// GradingOf returns the grading a lab belongs to, if any.
func GradingOf(lab string) (Grading, bool) {
	b, err := os.ReadFile(gradingPath(lab))
	if err != nil {
		return Grading{}, false
	}
	var g Grading
	if json.Unmarshal(b, &g) != nil {
		return Grading{}, false
	}
	return g, true
}

// Orphaned reports whether the grading process that made the lab is gone.
func (g Grading) Orphaned() bool {
	return !(alive(g.PID) && procStartTime(g.PID) == g.StartTime)
}
