package web

import "github.com/labctl/labctl/netem"

// SpecField is one field of the page's impairment form: a flag of `labctl
// netem set`.
type SpecField struct {
	Name string `json:"name"` // the flag, without "--"
	Type string `json:"type"` // duration, percent, rate, uint, bool, string, ...
	Help string `json:"help"`
}

// FieldError is what is wrong with one field ("" for the combination).
type FieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// SpecForm turns the page's impairment form into a Spec and back. labctl
// gives the server the one `labctl netem set` is made of (cmd/labctl), so
// the page has the same fields, parsing, validation and messages.
type SpecForm interface {
	// Fields are the form's fields, in the order to show them.
	Fields() []SpecField
	// Parse reads the fields given (empty ones are clean, as flags not
	// given are): every field's error, or the combination's with Field "".
	Parse(fields map[string]string) (netem.Spec, []FieldError)
	// Format is the inverse of Parse: the fields that make s.
	Format(s netem.Spec) map[string]string
}
