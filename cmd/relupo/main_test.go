package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relupo/relupo/internal/testutil"
)

// The tests drive the real binary, because exit codes and stderr are the
// contract with the user.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relupo-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "relupo")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building relupo: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	testutil.Report()
	os.Exit(code)
}

// relupo runs the binary and returns stdout, stderr and the exit code.
func relupo(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return so.String(), se.String(), code
}

// tinyModel is a Llama checked into the repository (generated with PyTorch
// for the model tests), and pairs writes pre-tokenized pairs for it.
const tinyModel = "../../model/testdata/arch/llama-gqa-tied"

func pairs(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"prompt_input_ids": [%d, %d, %d], "chosen_input_ids": [%d, %d], "rejected_input_ids": [%d, %d, %d]}`+"\n",
			3+i%50, 7, 11+i%30, 20+i%40, 5, 30+i%20, 6, 9)
	}
	path := filepath.Join(t.TempDir(), "pairs.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExitCodes(t *testing.T) {
	data := pairs(t, 4)
	out := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown command", []string{"fly"}, 2, "unknown command"},
		{"unknown flag", []string{"train", "--bogus"}, 2, "unknown flag: --bogus"},
		{"bad flag value", []string{"train", "--learning-rate", "fast"}, 2, "invalid argument"},
		{"unknown loss", []string{"train", "--model", tinyModel, "--data", data, "--loss-type", "kto"}, 2, `unknown loss type "kto"`},
		{"missing model", []string{"train", "--data", data}, 2, "--model) is required"},
		{"model folder without weights", []string{"logps", "--model", t.TempDir(), "--data", data}, 1, "config.json"},
		{"missing data file", []string{"logps", "--model", tinyModel, "--data", "nope.jsonl"}, 1, "nope.jsonl: no such file"},
		{"bad yaml", []string{"train", "--config", badYAML(t)}, 2, "config:"},
		{"ok", []string{"train", "--model", tinyModel, "--data", data, "--output-dir", out, "--max-steps", "1"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := relupo(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
				t.Fatalf("stack trace shown to the user:\n%s", stderr)
			}
		})
	}
}

// relupo logps writes a provenance header, then one line per pair, in
// input order, with the counts of label tokens.
func TestLogpsCommand(t *testing.T) {
	data := pairs(t, 5)
	stdout, stderr, code := relupo(t, "logps", "--model", tinyModel, "--data", data)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want a header and 5 pairs", len(lines))
	}
	var h struct {
		P struct {
			Data []struct {
				Bytes  int64
				SHA256 string
			}
			MaxLength int `json:"max_length"`
			Pairs     int
		} `json:"relupo_logps"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.P.Pairs != 5 || h.P.MaxLength != 1024 || len(h.P.Data) != 1 || len(h.P.Data[0].SHA256) != 64 {
		t.Fatalf("header %s (%v): want the provenance of 5 pairs at train's default max_length 1024", lines[0], err)
	}
	for _, l := range lines[1:] {
		var r struct {
			C, R   float64 `json:"-"`
			CL     float64 `json:"chosen_logps"`
			RL     float64 `json:"rejected_logps"`
			CT, RT int     `json:"-"`
			CTok   int     `json:"chosen_tokens"`
			RTok   int     `json:"rejected_tokens"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.CTok != 2 || r.RTok != 3 || !(r.CL < 0) || !(r.RL < 0) {
			t.Fatalf("unexpected line %s", l)
		}
	}
}

func badYAML(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "recipe.yaml")
	if err := os.WriteFile(path, []byte("learning_rate: [1e-6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// interruptAfter starts relupo, waits until metrics.jsonl has more than
// minStep steps logged, sends SIGINT and returns stderr and the last logged step.
func interruptAfter(t *testing.T, out string, minStep int, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for lastStep(filepath.Join(out, "metrics.jsonl")) <= minStep {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no progress: %s", se.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130; stderr:\n%s", err, se.String())
	}
	return se.String(), lastStep(filepath.Join(out, "metrics.jsonl"))
}

func lastStep(metrics string) int {
	b, _ := os.ReadFile(metrics)
	step := 0
	for _, l := range strings.Split(string(b), "\n") {
		var r struct{ Step int }
		if json.Unmarshal([]byte(l), &r) == nil && r.Step > step {
			step = r.Step
		}
	}
	return step
}

// SIGINT mid-run finishes the step, writes a checkpoint, exits 1 saying how
// to resume; a resumed run continues from that checkpoint.
func TestSIGINTWritesResumableCheckpoint(t *testing.T) {
	data := pairs(t, 64)
	out := t.TempDir()
	args := []string{"train", "--model", tinyModel, "--data", data, "--output-dir", out,
		"--max-steps", "100000", "--logging-steps", "1", "--per-device-train-batch-size", "2", "--threads", "1"}
	stderr, _ := interruptAfter(t, out, 3, args...)
	if want := "relupo: to resume: relupo " + strings.Join(args, " ") + " --resume-from-checkpoint latest\n"; !strings.Contains(stderr, want) {
		t.Fatalf("stderr does not give the command to resume (%q):\n%s", want, stderr)
	}
	entries, _ := filepath.Glob(filepath.Join(out, "checkpoint-*"))
	if len(entries) != 1 || strings.HasSuffix(entries[0], ".tmp") {
		t.Fatalf("checkpoints: %v", entries)
	}
	var saved int
	fmt.Sscanf(filepath.Base(entries[0]), "checkpoint-%d", &saved)
	if saved < 4 {
		t.Fatalf("checkpoint at step %d, want ≥ 4", saved)
	}
	// The resumed run starts from the checkpoint (metrics beyond it are
	// dropped) and goes on past it.
	stderr, last := interruptAfter(t, out, saved+2, append(args, "--resume-from-checkpoint", "latest")...)
	if !strings.Contains(stderr, fmt.Sprintf("starting at %d", saved)) || last <= saved+2 {
		t.Fatalf("resumed run: last step %d, stderr:\n%s", last, stderr)
	}
}

// relupo eval gives preference accuracy on held-out human-labelled pairs:
// Anthropic HH transcripts (gzip JSONL) through the fp16 tiny Llama's chat
// template.
func TestEvalOnHumanLabels(t *testing.T) {
	hh := testutil.SharedPath(t, "fixtures", "data", "hh-rlhf-harmless-base-test.jsonl.gz")
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	stdout, stderr, code := relupo(t, "eval", "--model", llama, "--data", hh+":0.05", "--max-length", "256", "--max-prompt-length", "192", "--skip-invalid")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r map[string]float64
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if r["pairs"] < 100 || r["rewards/accuracies"] < 0 || r["rewards/accuracies"] > 1 || r["lengths/chosen"] <= 0 {
		t.Fatalf("unexpected result %v", r)
	}
	for k, v := range r {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s is %v", k, v)
		}
	}
}

// kill -9 at arbitrary moments, with a checkpoint written every step: the
// newest complete checkpoint always loads and the run resumes from it to
// the end.
func TestKill9LeavesResumableCheckpoint(t *testing.T) {
	data := pairs(t, 32)
	out := t.TempDir()
	args := []string{"train", "--model", tinyModel, "--data", data, "--output-dir", out, "--max-steps", "60",
		"--save-steps", "1", "--save-total-limit", "2", "--per-device-train-batch-size", "2", "--threads", "1"}
	for i, delay := range []time.Duration{300, 450, 600, 750} {
		cmd := exec.Command(binary, append(args, resumeFlag(i)...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the first run must reach a checkpoint, however loaded the machine
			deadline := time.Now().Add(60 * time.Second)
			for len(globAll(t, filepath.Join(out, "checkpoint-*[0-9]"))) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		time.Sleep(delay * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		for _, leftover := range globAll(t, filepath.Join(out, "checkpoint-*")) {
			if strings.HasSuffix(leftover, ".tmp") || strings.HasSuffix(leftover, ".deleting") {
				continue // an interrupted save or deletion: ignored, and cleaned by the next run
			}
			if _, err := os.Stat(filepath.Join(leftover, "trainer_state.json")); err != nil {
				t.Fatalf("incomplete checkpoint folder %s", leftover)
			}
		}
	}
	_, stderr, code := relupo(t, append(args, "--resume-from-checkpoint", "latest")...)
	if code != 0 {
		t.Fatalf("resume after kill -9: exit %d\n%s", code, stderr)
	}
	if lastStep(filepath.Join(out, "metrics.jsonl")) != 60 {
		t.Fatalf("metrics end at step %d, want 60", lastStep(filepath.Join(out, "metrics.jsonl")))
	}
}

// resumeFlag resumes every run but the first.
func resumeFlag(i int) []string {
	if i == 0 {
		return nil
	}
	return []string{"--resume-from-checkpoint", "latest"}
}

func globAll(t *testing.T, pattern string) []string {
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A full disk while saving gives a clear error and leaves the previous
// checkpoint intact and loadable. The full disk is a small tmpfs, which
// needs root (the test skips otherwise).
func TestFullDiskKeepsPreviousCheckpoint(t *testing.T) {
	data := pairs(t, 8)
	args := func(out string) []string {
		return []string{"train", "--model", tinyModel, "--data", data, "--output-dir", out, "--max-steps", "3",
			"--save-steps", "1", "--save-total-limit", "1", "--per-device-train-batch-size", "2", "--force"}
	}
	// Measure one checkpoint on an ordinary disk.
	probe := t.TempDir()
	if _, stderr, code := relupo(t, args(probe)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var size int64
	filepath.Walk(filepath.Join(probe, "checkpoint-2"), func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			size += info.Size()
		}
		return nil
	})
	if size == 0 {
		t.Fatal("no checkpoint-2 in the probe run")
	}
	// A disk with room for one checkpoint and a half.
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size*3/2), "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	_, stderr, code := relupo(t, args(mnt)...)
	if code != 1 || !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, "previous checkpoints are intact") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	ckpts := globAll(t, filepath.Join(mnt, "checkpoint-*"))
	if len(ckpts) != 1 || !strings.HasSuffix(ckpts[0], "checkpoint-1") {
		t.Fatalf("checkpoints left: %v", ckpts)
	}
	if _, stderr, code := relupo(t, "logps", "--model", ckpts[0], "--data", data); code != 0 {
		t.Fatalf("the previous checkpoint does not load: %s", stderr)
	}
}

// Training writes nothing outside --output-dir: run from an empty working
// folder, the folder afterwards holds only the output folder.
func TestWritesStayInOutputDir(t *testing.T) {
	data := pairs(t, 4)
	model, err := filepath.Abs(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(model)
	work := t.TempDir()
	cmd := exec.Command(binary, "train", "--model", model, "--data", data, "--output-dir", "out", "--max-steps", "2",
		"--save-steps", "1", "--loss-type", "dpo")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	entries, _ := os.ReadDir(work)
	if len(entries) != 1 || entries[0].Name() != "out" {
		t.Fatalf("working folder holds %v, want only out/", entries)
	}
	if after, _ := os.ReadDir(model); len(after) != len(before) {
		t.Fatalf("the input model folder changed: %v, was %v", after, before)
	}
}
