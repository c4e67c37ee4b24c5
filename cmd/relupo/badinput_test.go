package main

import (
	bin "encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyModel copies the checked-in tiny model into a temporary folder that a
// test may damage.
func copyModel(t *testing.T) string {
	t.Helper()
	return weightsOnly(t, tinyModel)
}

// Bad input gets one clear error line naming the file (and record), exit
// code 1 (2 for usage), no stack trace and no partial output.
func TestBadInput(t *testing.T) {
	good := pairs(t, 4)
	corrupt := func(edit func(b []byte) []byte) string {
		dir := copyModel(t)
		path := filepath.Join(dir, "model.safetensors")
		b, _ := os.ReadFile(path)
		os.WriteFile(path, edit(b), 0o644)
		return dir
	}
	header := func(b []byte) (int, map[string]any) {
		n := int(bin.LittleEndian.Uint64(b[:8]))
		var h map[string]any
		json.Unmarshal(b[8:8+n], &h)
		return n, h
	}
	rewriteHeader := func(b []byte, edit func(h map[string]any)) []byte {
		n, h := header(b)
		edit(h)
		hb, _ := json.Marshal(h)
		for len(hb) < n {
			hb = append(hb, ' ')
		}
		if len(hb) != n {
			t.Fatal("edited header does not fit")
		}
		return append(append(b[:8:8], hb...), b[8+n:]...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
		code int
	}{
		{"truncated safetensors", []string{"logps", "--model", corrupt(func(b []byte) []byte { return b[:len(b)/2] }), "--data", good}, []string{"model.safetensors"}, 1},
		{"header past end", []string{"logps", "--model", corrupt(func(b []byte) []byte {
			bin.LittleEndian.PutUint64(b[:8], uint64(len(b)*4))
			return b
		}), "--data", good}, []string{"model.safetensors", "header"}, 1},
		{"offsets out of range", []string{"logps", "--model", corrupt(func(b []byte) []byte {
			return rewriteHeader(b, func(h map[string]any) {
				e := h["model.norm.weight"].(map[string]any)
				e["data_offsets"] = []any{0, 1 << 40}
			})
		}), "--data", good}, []string{"model.safetensors", `"model.norm.weight"`}, 1},
		{"size not dtype×shape", []string{"logps", "--model", corrupt(func(b []byte) []byte {
			return rewriteHeader(b, func(h map[string]any) {
				e := h["model.norm.weight"].(map[string]any)
				e["shape"] = []any{47}
			})
		}), "--data", good}, []string{"model.safetensors", `"model.norm.weight"`}, 1},
		{"malformed config.json", []string{"logps", "--model", func() string {
			dir := copyModel(t)
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "llama",`), 0o644)
			return dir
		}(), "--data", good}, []string{"config.json", "invalid JSON"}, 1},
		{"folder without weights", []string{"logps", "--model", func() string {
			dir := copyModel(t)
			os.Remove(filepath.Join(dir, "model.safetensors"))
			return dir
		}(), "--data", good}, []string{"no weights"}, 1},
		{"malformed dataset line", []string{"logps", "--model", tinyModel, "--data", writeFile(t, "d.jsonl",
			`{"prompt_input_ids": [1], "chosen_input_ids": [2], "rejected_input_ids": [3]}`+"\n"+`{"prompt_input_ids": [1,`+"\n")},
			[]string{"d.jsonl:2"}, 1},
		{"token id beyond vocab", []string{"logps", "--model", tinyModel, "--data", writeFile(t, "v.jsonl",
			`{"prompt_input_ids": [1, 2], "chosen_input_ids": [500], "rejected_input_ids": [3]}`+"\n")},
			[]string{"500", "vocab"}, 1},
		{"empty response", []string{"train", "--model", tinyModel, "--output-dir", t.TempDir(), "--data", writeFile(t, "e.jsonl",
			`{"prompt_input_ids": [1, 2], "chosen_input_ids": [], "rejected_input_ids": [3]}`+"\n")},
			[]string{"e.jsonl:1"}, 1},
		{"invalid UTF-8", []string{"logps", "--model", "../../../shared/fixtures/models/tiny-random-llama", "--data", writeFile(t, "u.jsonl",
			"{\"prompt\": \"a\xff\", \"chosen\": \"b\", \"rejected\": \"c\"}\n")},
			[]string{"u.jsonl:1"}, 1},
		{"template raise_exception", []string{"logps", "--model", "../../../shared/fixtures/models/tiny-random-llama", "--data", writeFile(t, "r.jsonl",
			`{"prompt": [{"role": "assistant", "content": "x"}], "chosen": [{"role": "assistant", "content": "b"}], "rejected": [{"role": "assistant", "content": "c"}]}`+"\n")},
			[]string{"r.jsonl:1", "alternate"}, 1},
		{"unknown YAML value", []string{"train", "--config", writeFile(t, "c.yaml", "loss_type: kto\nmodel_name_or_path: x\ndata: y\n")},
			[]string{"unknown loss type"}, 2},
		{"bad YAML type", []string{"train", "--config", writeFile(t, "c.yaml", "learning_rate: fast\n")},
			[]string{"c.yaml", "learning_rate"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(strings.Join(tc.args, " "), "shared/fixtures") {
				if _, err := os.Stat("../../../shared/fixtures"); err != nil {
					t.Skip("skipping: ../shared is not beside the repository")
				}
			}
			stdout, stderr, code := relupo(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not mention %q", stderr, w)
				}
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 0 && !strings.Contains(stderr, "warning") {
				t.Errorf("more than one error line:\n%s", stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Fatalf("stack trace:\n%s", stderr)
			}
			if tc.args[0] == "logps" && stdout != "" {
				t.Errorf("partial output on stdout: %q", stdout)
			}
		})
	}
}
