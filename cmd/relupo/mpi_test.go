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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relupo/relupo/safetensors"
)

// The data-parallel tests run relupo under OpenMPI's mpirun on loopback.
// They need mpirun and a relupo built with -tags mpi (cgo and libmpi:
// apt-get install openmpi-bin libopenmpi-dev, as .ci/run does) and skip,
// saying so, without them.

var (
	mpiOnce   sync.Once
	mpiBinary string
	mpiSkip   string
)

// mpiRelupo returns the path of a relupo built with -tags mpi, or skips.
func mpiRelupo(t *testing.T) string {
	t.Helper()
	mpiOnce.Do(func() {
		if _, err := exec.LookPath("mpirun"); err != nil {
			mpiSkip = "mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"
			return
		}
		mpiBinary = filepath.Join(filepath.Dir(binary), "relupo-mpi")
		cmd := exec.Command("go", "build", "-tags", "mpi", "-o", mpiBinary, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			mpiSkip = fmt.Sprintf("cannot build relupo with -tags mpi (needs cgo and libopenmpi-dev): %v\n%s", err, out)
		}
	})
	if mpiSkip != "" {
		t.Skip(mpiSkip)
	}
	return mpiBinary
}

// mpirun runs n ranks of bin with args and returns stderr and the exit code.
func mpirun(t *testing.T, n int, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("mpirun", append([]string{"--allow-run-as-root", "--oversubscribe", "-np", strconv.Itoa(n), bin}, args...)...)
	var se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &se, &se
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return se.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return se.String(), 0
}

// weights reads a model folder's float32 weights.
func weights(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	out := map[string][]float32{}
	for _, name := range ck.Names() {
		if out[name], err = ck.Float32(name); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// maxWeightDiff is the largest difference between two models' weights.
func maxWeightDiff(t *testing.T, a, b map[string][]float32) float64 {
	t.Helper()
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d tensors", len(a), len(b))
	}
	d := 0.0
	for name, x := range a {
		y := b[name]
		if len(y) != len(x) {
			t.Fatalf("%s: %d and %d values", name, len(x), len(y))
		}
		for i := range x {
			d = math.Max(d, math.Abs(float64(x[i]-y[i])))
		}
	}
	return d
}

// mpiTrainArgs are three optimizer steps over 36 pairs with a learning rate
// large enough to move every weight, weight decay and active clipping.
func mpiTrainArgs(data, out string, batch int, extra ...string) []string {
	return append([]string{"train", "--model", tinyModel, "--data", data, "--output-dir", out, "--save-dtype", "float32",
		"--max-steps", "3", "--per-device-train-batch-size", strconv.Itoa(batch), "--learning-rate", "1e-2",
		"--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--weight-decay", "0.1", "--max-grad-norm", "0.5",
		"--gamma", "3", "--threads", "1", "--logging-steps", "1"}, extra...)
}

// Two ranks with micro-batch 3 take the same optimizer steps as one
// process with batch 6: each step covers the same six pairs (the
// DistributedSampler split of the epoch's order), the gradients are the
// mean over the ranks, and every rank applies the same update. Float32
// sums run in another order, hence 5e-5, not bitwise. Also with a
// reference model (DPO), ZeRO stage 1 and gradient accumulation.
func TestMPIEquivalence(t *testing.T) {
	bin := mpiRelupo(t)
	data := pairs(t, 36)
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"repo", nil},
		{"repo-zero1", []string{"--zero-stage", "1"}},
		{"dpo", []string{"--loss-type", "dpo", "--beta", "0.5"}},
		{"dpo-zero1-accumulation", []string{"--loss-type", "dpo", "--beta", "0.5", "--zero-stage", "1", "--gradient-accumulation-steps", "2", "--max-steps", "2"}},
		// LoRA: only the adapters are averaged and (ZeRO-1) sharded; the
		// merged model carries them. No dropout: its masks follow a
		// pair's place in the micro-batch, which the ranks split.
		{"lora-zero1", []string{"--use-peft", "--lora-r", "4", "--lora-dropout", "0", "--lora-target-modules", "all-linear", "--merge-adapter", "--zero-stage", "1"}},
		{"lora-dpo", []string{"--use-peft", "--lora-r", "4", "--lora-dropout", "0", "--merge-adapter", "--loss-type", "dpo", "--beta", "0.5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one, two := t.TempDir(), t.TempDir()
			if _, se, code := relupo(t, mpiTrainArgs(data, one, 6, tc.extra...)...); code != 0 {
				t.Fatalf("one process: exit %d: %s", code, se)
			}
			se, code := mpirun(t, 2, bin, mpiTrainArgs(data, two, 3, tc.extra...)...)
			if code != 0 {
				t.Fatalf("two ranks: exit %d: %s", code, se)
			}
			if !strings.Contains(se, "2 ranks (global batch") {
				t.Errorf("the start line does not describe the ranks:\n%s", se)
			}
			w1 := weights(t, one)
			d := maxWeightDiff(t, w1, weights(t, two))
			moved := maxWeightDiff(t, weights(t, tinyModel), w1)
			t.Logf("max |Δw| = %.3g; the steps moved a weight by up to %.3g", d, moved)
			if d > 5e-5 {
				t.Fatalf("weights differ by %g", d)
			}
			if moved < 100*5e-5 {
				t.Fatalf("the steps moved no weight by more than %g: the comparison would hold without training", moved)
			}
			// The logged metrics are the global batch's (AdamW's update does
			// not depend on the gradients' scale, so the norm checks the
			// averaging): loss, gradient norm, rewards and token counts.
			r1, r2 := metricRows(t, one), metricRows(t, two)
			if len(r1) != len(r2) || len(r1) == 0 {
				t.Fatalf("metrics.jsonl has %d rows with one process and %d with two ranks (rank 0 alone writes)", len(r1), len(r2))
			}
			for i := range r1 {
				for _, k := range []string{"loss", "grad_norm", "rewards/margins", "rewards/accuracies", "logps/chosen", "num_tokens"} {
					if a, b := r1[i][k], r2[i][k]; math.Abs(a-b) > 1e-4*math.Max(1, math.Abs(a)) {
						t.Errorf("step %v: %s = %v with one process, %v with two ranks", r1[i]["step"], k, a, b)
					}
				}
			}
		})
	}
}

// A checkpoint of a two-rank ZeRO-1 run is an ordinary full checkpoint:
// one process with the same global batch resumes from it and ends with
// the two-rank run's weights, and so do two ZeRO-1 ranks.
func TestMPIResumeWithOtherRanks(t *testing.T) {
	bin := mpiRelupo(t)
	data := pairs(t, 36)
	two := t.TempDir()
	if se, code := mpirun(t, 2, bin, mpiTrainArgs(data, two, 3, "--zero-stage", "1", "--save-steps", "2")...); code != 0 {
		t.Fatalf("two ranks: exit %d: %s", code, se)
	}
	resumed := t.TempDir()
	ck := filepath.Join(two, "checkpoint-2")
	if _, se, code := relupo(t, mpiTrainArgs(data, resumed, 6, "--resume-from-checkpoint", ck)...); code != 0 {
		t.Fatalf("resume in one process: exit %d: %s", code, se)
	}
	if d := maxWeightDiff(t, weights(t, two), weights(t, resumed)); d > 5e-5 {
		t.Fatalf("resumed weights differ from the two-rank run by %g", d)
	}
	// Two ZeRO-1 ranks resume from it too, each taking its shard of the
	// full optimizer state.
	sharded := t.TempDir()
	if se, code := mpirun(t, 2, bin, mpiTrainArgs(data, sharded, 3, "--zero-stage", "1", "--resume-from-checkpoint", ck)...); code != 0 {
		t.Fatalf("resume on two ZeRO-1 ranks: exit %d: %s", code, se)
	}
	if d := maxWeightDiff(t, weights(t, two), weights(t, sharded)); d > 5e-5 {
		t.Fatalf("weights resumed on two ZeRO-1 ranks differ from the uninterrupted run by %g", d)
	}
}

// When a rank dies, mpirun stops the others within a bounded time, and
// the output folder holds no partial checkpoint and no final model.
func TestMPIKillARank(t *testing.T) {
	bin := mpiRelupo(t)
	data := pairs(t, 36)
	out := t.TempDir()
	args := append([]string{"--allow-run-as-root", "--oversubscribe", "-np", "2", bin},
		mpiTrainArgs(data, out, 3, "--max-steps", "100000", "--save-steps", "5", "--num-train-epochs", "1000")...)
	cmd := exec.Command("mpirun", args...)
	var se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &se, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for lastStep(filepath.Join(out, "metrics.jsonl")) < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no progress: %s", se.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ranks, err := exec.Command("pgrep", "-P", strconv.Itoa(cmd.Process.Pid)).Output()
	pids := strings.Fields(string(ranks))
	if err != nil || len(pids) != 2 {
		cmd.Process.Kill()
		t.Fatalf("ranks of mpirun: %q (%v)", ranks, err)
	}
	victim, _ := strconv.Atoi(pids[1])
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("mpirun exited 0 after a rank was killed:\n%s", se.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the job did not stop within 60 s of a rank's death:\n%s", se.String())
	}
	cks, _ := filepath.Glob(filepath.Join(out, "checkpoint-*[0-9]"))
	for _, ck := range cks {
		for _, f := range []string{"model.safetensors", "optimizer.safetensors", "trainer_state.json"} {
			if _, err := os.Stat(filepath.Join(ck, f)); err != nil {
				t.Errorf("partial checkpoint %s: %v", ck, err)
			}
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(out, "checkpoint-*.tmp")); len(tmp) > 0 {
		// A kill may leave a checkpoint being written; the next run removes it, and it is never taken for a checkpoint.
		t.Logf("left %v (removed by the next run)", tmp)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
		t.Error("a final model was written by a job that lost a rank")
	}
}

// A relupo built without MPI refuses to run as one of several ranks,
// instead of running independent copies that overwrite each other.
func TestNoMPIBuildRefusesSeveralRanks(t *testing.T) {
	data := pairs(t, 4)
	cmd := exec.Command(binary, mpiTrainArgs(data, t.TempDir(), 2)...)
	cmd.Env = append(os.Environ(), "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_RANK=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "built without MPI") {
		t.Fatalf("exit %v: %s", err, out)
	}
	if _, err := exec.LookPath("mpirun"); err == nil {
		se, code := mpirun(t, 2, binary, mpiTrainArgs(data, t.TempDir(), 2)...)
		if code == 0 || !strings.Contains(se, "built without MPI") {
			t.Fatalf("under mpirun: exit %d: %s", code, se)
		}
	}
}

// metricRows reads the training rows (those with a loss) of metrics.jsonl.
func metricRows(t *testing.T, dir string) []map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]float64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r map[string]float64
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if _, ok := r["loss"]; ok {
			rows = append(rows, r)
		}
	}
	return rows
}

// An error on one rank only (here rank 0 cannot replace the metrics file,
// which another program left as a non-empty folder) aborts the whole job
// with the error and the rank, instead of leaving the other rank waiting
// in a collective.
func TestMPIErrorOnOneRankAborts(t *testing.T) {
	bin := mpiRelupo(t)
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "metrics.jsonl", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	se, code := mpirun(t, 2, bin, mpiTrainArgs(pairs(t, 12), out, 3)...)
	if code == 0 || !strings.Contains(se, "rank 0 of 2") || !strings.Contains(se, "metrics.jsonl") {
		t.Fatalf("exit %d: %s", code, se)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("the job took %v to stop", d)
	}
}
