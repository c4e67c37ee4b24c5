// Package testutil holds helpers shared by relupo's tests.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns the absolute path of the ../shared folder that sits beside
// the repository root (fixtures, golden vectors, the PyTorch reference). When
// it is absent, as in a user's clone, the test is skipped with a clear message.
func SharedDir(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Skipf("shared fixtures unavailable: %v", err)
	}
	dir := filepath.Join(root, "..", "shared")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("skipping: ../shared (fixtures and golden vectors) is not beside the repository at %s", dir)
	}
	return dir
}

// SharedPath is SharedDir joined with the given path elements; the test is
// skipped when that file or folder does not exist.
func SharedPath(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{SharedDir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: %s not found in ../shared", filepath.Join(elem...))
	}
	return p
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
