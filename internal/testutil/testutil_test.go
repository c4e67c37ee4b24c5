package testutil

import "testing"

// TestSummary pins Main's closing line: none when nothing was skipped, the
// ../shared line when the folder is absent, and a variant when only files in
// it are missing.
func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		noShared, noFile int64
		want             string
	}{
		{0, 0, ""},
		{12, 0, "testutil: 12 tests skipped because ../shared is absent (fixtures, real tokenizers and models are not part of a clone)"},
		{1, 0, "testutil: 1 test skipped because ../shared is absent (fixtures, real tokenizers and models are not part of a clone)"},
		{0, 3, "testutil: 3 tests skipped because files are missing from ../shared (fixtures, real tokenizers and models are not part of a clone)"},
	} {
		if got := summary(tc.noShared, tc.noFile); got != tc.want {
			t.Errorf("summary(%d, %d) = %q, want %q", tc.noShared, tc.noFile, got, tc.want)
		}
	}
}

// TestSharedPathCounts checks that a skip for a missing file in ../shared is
// counted, whether or not ../shared itself is present.
func TestSharedPathCounts(t *testing.T) {
	before := SkippedForShared()
	ok := t.Run("missing", func(t *testing.T) {
		SharedPath(t, "no-such-file-relupo-testutil")
		t.Error("SharedPath did not skip for a missing file")
	})
	if !ok {
		t.Fatal("subtest failed")
	}
	if got := SkippedForShared() - before; got != 1 {
		t.Errorf("%d skips counted, want 1", got)
	}
}
