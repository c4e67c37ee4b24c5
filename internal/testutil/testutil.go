// Package testutil holds helpers shared by relupo's tests.
package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// Counts of tests skipped by SharedDir and SharedPath: because ../shared
// itself is absent, or because a file or folder in it is.
var skippedNoShared, skippedNoFile atomic.Int64

// SharedDir returns the absolute path of the ../shared folder that sits beside
// the repository root (fixtures, golden vectors, the PyTorch reference). When
// it is absent, as in a user's clone, the test is skipped with a clear message
// and counted for [Main]'s summary.
func SharedDir(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		skippedNoShared.Add(1)
		t.Skipf("shared fixtures unavailable: %v", err)
	}
	dir := filepath.Join(root, "..", "shared")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		skippedNoShared.Add(1)
		t.Skipf("skipping: ../shared (fixtures and golden vectors) is not beside the repository at %s", dir)
	}
	return dir
}

// SharedPath is SharedDir joined with the given path elements; the test is
// skipped (and counted for [Main]'s summary) when that file or folder does
// not exist.
func SharedPath(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{SharedDir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		skippedNoFile.Add(1)
		t.Skipf("skipping: %s not found in ../shared", filepath.Join(elem...))
	}
	return p
}

// SkippedForShared returns how many tests (subtests included) SharedDir and
// SharedPath have skipped so far in this test binary.
func SkippedForShared() int64 { return skippedNoShared.Load() + skippedNoFile.Load() }

// Main runs the package's tests and exits with their status. When some of
// them were skipped because ../shared (or a file in it) is absent, it first
// prints one line saying how many, so that a clone's test run shows what it
// did not check. Use it as
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
// A package with a TestMain of its own calls [Report] after m.Run instead.
// (In package list mode, go test shows a passing package's output only with
// -v; the line is always in the output of go test -v and of a failing run.)
func Main(m *testing.M) {
	code := m.Run()
	Report()
	os.Exit(code)
}

// Report prints Main's summary line, if any test was skipped for ../shared.
func Report() {
	if line := summary(skippedNoShared.Load(), skippedNoFile.Load()); line != "" {
		fmt.Println(line)
	}
}

// summary is Report's line for the given counts ("" when both are 0).
func summary(noShared, noFile int64) string {
	n := noShared + noFile
	if n == 0 {
		return ""
	}
	tests := "tests"
	if n == 1 {
		tests = "test"
	}
	if noShared > 0 {
		return fmt.Sprintf("testutil: %d %s skipped because ../shared is absent (fixtures, real tokenizers and models are not part of a clone)", n, tests)
	}
	return fmt.Sprintf("testutil: %d %s skipped because files are missing from ../shared (fixtures, real tokenizers and models are not part of a clone)", n, tests)
}

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
