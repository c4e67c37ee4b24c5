package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalExitsAtOnce blocks relupo reading a FIFO that nobody
// writes (no loop check can see the first signal there) and checks that a
// second SIGINT or SIGTERM ends it with exit 130.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, "pairs.jsonl")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Skipf("no FIFOs here: %v", err)
			}
			cmd := exec.Command(binary, "train", "--model", tinyModel, "--data", fifo, "--output-dir", filepath.Join(dir, "out"), "--threads", "1")
			se := &syncBuffer{}
			cmd.Stderr = se
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// Opening the write end succeeds once relupo has the FIFO open
			// for reading; it then blocks reading, as nothing is written.
			var w *os.File
			for deadline := time.Now().Add(60 * time.Second); ; {
				f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
				if err == nil {
					w = f
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("relupo never opened the data: %v; stderr:\n%s", err, se.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			defer w.Close()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			// A second signal sent before the first is handled would merge
			// with it.
			for deadline := time.Now().Add(60 * time.Second); !strings.Contains(se.String(), "stopping"); {
				if time.Now().After(deadline) {
					t.Fatalf("the first signal was not acknowledged; stderr:\n%s", se.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
					t.Fatalf("exit %v, want %d; stderr:\n%s", err, exitInterrupted, se.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("still running a minute after two signals; stderr:\n%s", se.String())
			}
			if !strings.Contains(se.String(), "exiting now") {
				t.Fatalf("stderr does not say why it exits:\n%s", se.String())
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestResumeCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--model", "m", "--data", "d.jsonl"}, "relupo train --model m --data d.jsonl --resume-from-checkpoint latest"},
		{[]string{"train", "--resume-from-checkpoint", "out/checkpoint-4", "--output-dir", "out"}, "relupo train --output-dir out --resume-from-checkpoint latest"},
		{[]string{"train", "--resume_from_checkpoint=latest", "--beta", "2"}, "relupo train --beta 2 --resume-from-checkpoint latest"},
		{[]string{"train", "--data", "my data.jsonl", "--chat-template", "it's"}, `relupo train --data 'my data.jsonl' --chat-template 'it'\''s' --resume-from-checkpoint latest`},
	} {
		if got := resumeCommand(c.args); got != c.want {
			t.Errorf("resumeCommand(%q) = %s, want %s", c.args, got, c.want)
		}
	}
}
