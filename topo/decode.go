package topo

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is a problem at one place of a lab file.
type FieldError struct {
	File string
	Line int
	Path string // e.g. links[2].netem.loss
	Err  error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

var nodeType = reflect.TypeOf(yaml.Node{})

// decodeStrict decodes n into out (a pointer) like yaml.Node.Decode, but
// refuses unknown fields and reports every error with the line and the path
// of the field, and fills a `Line int yaml:"-"` field of each struct with
// the line the struct starts on.
func decodeStrict(n *yaml.Node, out any) error {
	return decodeValue(n, reflect.ValueOf(out).Elem(), "")
}

func joinPath(path, key string) string {
	if key == "" {
		return path
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldErr(n *yaml.Node, path string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		fe.Path = joinPath(path, fe.Path)
		if fe.Line == 0 {
			fe.Line = n.Line
		}
		return fe
	}
	return &FieldError{Line: n.Line, Path: path, Err: err}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func decodeValue(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return nil
	}
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
			if isNull(n) {
				return nil
			}
			if err := u.UnmarshalYAML(n); err != nil {
				return fieldErr(n, path, err)
			}
			return nil
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		p := reflect.New(v.Type().Elem())
		if err := decodeValue(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return decodeStruct(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return fieldErr(n, path, errors.New("want a list"))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if err := decodeValue(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if isNull(n) {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return fieldErr(n, path, errors.New("want a mapping of names to values"))
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := decodeValue(val, ev, joinPath(path, k.Value)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fieldErr(n, path, fmt.Errorf("want a single %s value", kindWord(v.Kind())))
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		return fieldErr(n, path, fmt.Errorf("want %s, got %q", kindWord(v.Kind()), n.Value))
	}
	return nil
}

func kindWord(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return k.String()
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	t := v.Type()
	if f, ok := t.FieldByName("Line"); ok && f.Type.Kind() == reflect.Int && f.Tag.Get("yaml") == "-" {
		v.FieldByIndex(f.Index).SetInt(int64(n.Line))
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fieldErr(n, path, errors.New("want a mapping of fields"))
	}
	fields := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" && t.Field(i).IsExported() {
			fields[name] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		idx, ok := fields[k.Value]
		if !ok {
			return &FieldError{Line: k.Line, Path: joinPath(path, k.Value), Err: fmt.Errorf("unknown field (known: %s)", knownFields(fields))}
		}
		if seen[k.Value] {
			return &FieldError{Line: k.Line, Path: joinPath(path, k.Value), Err: errors.New("given twice")}
		}
		seen[k.Value] = true
		if err := decodeValue(val, v.Field(idx), joinPath(path, k.Value)); err != nil {
			return err
		}
	}
	return nil
}

func knownFields(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns the YAML library's syntax error into a FieldError.
func syntaxError(file string, err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return &FieldError{File: file, Line: line, Err: fmt.Errorf("bad YAML: %s", m[2])}
	}
	return &FieldError{File: file, Err: fmt.Errorf("bad YAML: %s", strings.TrimPrefix(msg, "yaml: "))}
}
