package train

import (
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// TestMain runs the tests and ends with one line counting those skipped
// because ../shared (fixtures, real tokenizers and models) is not beside
// the repository, as in a clone.
func TestMain(m *testing.M) { testutil.Main(m) }
