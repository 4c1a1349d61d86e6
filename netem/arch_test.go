package netem_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImportRules: the netem packages import only what docs/architecture.md
// allows (their non-test files).
func TestImportRules(t *testing.T) {
	const mod = "github.com/labctl/labctl/"
	allowed := map[string][]string{
		".":       {"topo", "internal/nsdo"},
		"kernel":  {"netem", "topo", "internal/nsdo"},
		"engine":  {"netem", "topo", "internal/nsdo"},
		"measure": {"netem", "internal/nsdo"},
	}
	for dir, ok := range allowed {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			require.NoError(t, err)
			for _, im := range af.Imports {
				p, _ := strconv.Unquote(im.Path.Value)
				ours, isOurs := strings.CutPrefix(p, mod)
				if !isOurs {
					continue
				}
				assert.Contains(t, ok, ours, "%s imports %s", f, p)
			}
		}
	}
}
