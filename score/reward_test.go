package score

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
)

// The golden reward model and its PyTorch scores
// (scripts/goldens/gen_reward_goldens.py).
const rewardDir = "testdata/reward"

type rewardGolden struct {
	PadTokenID   int       `json:"pad_token_id"`
	Prompt       []int32   `json:"prompt"`
	Responses    [][]int32 `json:"responses"`
	Sequences    [][]int32 `json:"sequences"`
	ReadPosition []int     `json:"read_position"`
	Scores       []float64 `json:"scores"`
	F32VsF64     float64   `json:"f32_vs_f64_max_rel"`
}

func readRewardGolden(t *testing.T) rewardGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rewardDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g rewardGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// rewardTol is the relative tolerance against PyTorch's float32 scores:
// the 1e-4. Both sides round in float32 through two layers, which
// moves a score by about 1e-6 relative (f32_vs_f64_max_rel in the golden,
// PyTorch's own float32 against float64), so 1e-4 leaves room for a
// different summation order while catching any wrong position, head or
// mask (those move scores by 1e-1).
const rewardTol = 1e-4

func checkScores(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d scores, want %d", what, len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(got[i] - want[i]); !(d <= rewardTol*math.Abs(want[i])) {
			t.Errorf("%s: sequence %d score %.7g, PyTorch %.7g (rel err %.2g)", what, i, got[i], want[i], d/math.Abs(want[i]))
		}
	}
}

func TestRewardModelMatchesPyTorch(t *testing.T) {
	g := readRewardGolden(t)
	rm, err := loadRewardWeights(rewardDir, RewardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	if rm.PadTokenID != g.PadTokenID {
		t.Fatalf("pad id %d, want %d", rm.PadTokenID, g.PadTokenID)
	}
	for i, s := range g.Sequences {
		if p := rm.readPosition(s); p != g.ReadPosition[i] {
			t.Errorf("sequence %d %v: read at %d, transformers reads %d", i, s, p, g.ReadPosition[i])
		}
	}
	ctx := context.Background()
	got, err := rm.ScoreTokens(ctx, g.Sequences)
	if err != nil {
		t.Fatal(err)
	}
	checkScores(t, "packed", got, g.Scores)

	// One pass per sequence gives the same scores as one packed pass.
	rm.maxTokens = 1
	got, err = rm.ScoreTokens(ctx, g.Sequences)
	if err != nil {
		t.Fatal(err)
	}
	checkScores(t, "one at a time", got, g.Scores)

	// The prompt run once for every response (the last response is
	// nothing but pad ids, so its score is read inside the shared prompt).
	n := len(g.Responses)
	out := make([]float64, n)
	grp := makeGroup(g.Sequences[:n], out)
	if grp.prefix != len(g.Prompt) {
		t.Fatalf("shared prefix %d tokens, want the prompt's %d", grp.prefix, len(g.Prompt))
	}
	if err := rm.run([]*group{grp, makeGroup(g.Sequences[n:], make([]float64, len(g.Sequences)-n))}); err != nil {
		t.Fatal(err)
	}
	checkScores(t, "shared prompt", out, g.Scores[:n])
}

func TestMakeGroup(t *testing.T) {
	tests := []struct {
		name   string
		seqs   [][]int32
		prefix int
	}{
		{"one sequence", [][]int32{{1, 2, 3}}, 0},
		{"common prompt", [][]int32{{1, 2, 3, 4}, {1, 2, 5}, {1, 2, 3, 6, 7}}, 2},
		{"one is a prefix of another", [][]int32{{1, 2, 3}, {1, 2, 3, 4}}, 2},
		{"identical", [][]int32{{1, 2}, {1, 2}}, 1},
		{"nothing shared", [][]int32{{1, 2}, {3, 2}}, 0},
		{"single tokens", [][]int32{{1}, {1}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if g := makeGroup(tc.seqs, nil); g.prefix != tc.prefix {
				t.Errorf("prefix %d, want %d", g.prefix, tc.prefix)
			}
		})
	}
}

// writeRewardVariant writes a copy of the golden reward model to a new
// folder with its tensors changed by edit and its config by editCfg.
func writeRewardVariant(t *testing.T, edit func(ts []safetensors.Tensor) []safetensors.Tensor, editCfg func(cfg map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	ck, err := safetensors.OpenCheckpoint(rewardDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var ts []safetensors.Tensor
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		data, err := ck.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: info.Shape, Data: data})
	}
	if edit != nil {
		ts = edit(ts)
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(rewardDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if editCfg != nil {
		editCfg(cfg)
	}
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRewardModelErrors(t *testing.T) {
	head := func(shape []int) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == model.ScoreHeadTensor {
					n := 1
					for _, d := range shape {
						n *= d
					}
					ts[i].Shape, ts[i].Data = shape, make([]float32, n)
				}
			}
			return ts
		}
	}
	drop := func(name string) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			var out []safetensors.Tensor
			for _, t := range ts {
				if t.Name != name {
					out = append(out, t)
				}
			}
			return out
		}
	}
	tests := []struct {
		name    string
		edit    func([]safetensors.Tensor) []safetensors.Tensor
		editCfg func(map[string]any)
		want    string
	}{
		{"two labels", head([]int{2, 16}), nil, "score.weight has shape [2 16], want [1, 16]"},
		{"flat head", head([]int{16}), nil, "score.weight has shape [16], want [1, 16]"},
		{"no head", drop(model.ScoreHeadTensor), nil, "has no score.weight"},
		{"causal LM", nil, func(c map[string]any) { c["architectures"] = []string{"LlamaForCausalLM"} }, "is neither a *ForSequenceClassification model nor ArmoRM's LlamaForRewardModelWithGating"},
		{"missing layer tensor", drop("model.layers.1.mlp.up_proj.weight"), nil, `no tensor "model.layers.1.mlp.up_proj.weight"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeRewardVariant(t, tc.edit, tc.editCfg)
			_, err := LoadRewardModel(dir, RewardOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadRewardModel = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// writeTokenizer adds a character-level tokenizer (ids 3.. for a-z, 29 for
// a space, <pad> 0, <s> 1, </s> 2) and a chat template to a model folder.
func writeTokenizer(t *testing.T, dir string) {
	t.Helper()
	vocab := map[string]int{"<pad>": 0, "<s>": 1, "</s>": 2, " ": 29, ":": 30}
	for c := 'a'; c <= 'z'; c++ {
		vocab[string(c)] = int(c-'a') + 3
	}
	tj := map[string]any{
		"added_tokens": []map[string]any{
			{"id": 0, "content": "<pad>", "special": true, "normalized": false, "single_word": false, "lstrip": false, "rstrip": false},
			{"id": 1, "content": "<s>", "special": true, "normalized": false, "single_word": false, "lstrip": false, "rstrip": false},
			{"id": 2, "content": "</s>", "special": true, "normalized": false, "single_word": false, "lstrip": false, "rstrip": false},
		},
		"normalizer": nil, "pre_tokenizer": nil, "post_processor": nil, "decoder": nil,
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
	}
	b, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	tc := map[string]any{
		"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
		"chat_template": "{% for m in messages %}{{ bos_token }}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}{% endfor %}",
	}
	c, err := json.Marshal(tc)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tokenizer.json": b, "tokenizer_config.json": c} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRewardModelScoresRows(t *testing.T) {
	dir := writeRewardVariant(t, nil, nil)
	writeTokenizer(t, dir)
	rm, err := LoadRewardModel(dir, RewardOptions{MaxLength: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	var reports []string
	rm.Report = func(s string) { reports = append(reports, s) }

	prompt := []chat.Message{{Role: "user", Content: "hi"}}
	ids, err := rm.Encode(prompt, "yo")
	if err != nil {
		t.Fatal(err)
	}
	// <s> u s e r : space h i </s> <s> a s s i s t a n t : space y o </s>
	want := []int32{1, 23, 21, 7, 20, 30, 29, 10, 11, 2, 1, 3, 21, 21, 11, 21, 22, 3, 16, 22, 30, 29, 27, 17, 2}
	if len(ids) != len(want) {
		t.Fatalf("Encode = %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("Encode = %v, want %v", ids, want)
		}
	}

	rows := []Row{
		{ID: "a", Prompt: prompt, Responses: []string{"yo", "hello there", "", "a very long answer that will not fit"}},
		{ID: "b", Prompt: []chat.Message{{Role: "system", Content: "be kind"}, {Role: "user", Content: "why"}}, Responses: []string{"because"}},
		{ID: "c", Prompt: nil, Responses: []string{"x"}, Where: "in.jsonl:3"},
	}
	var progress []int
	failed, err := rm.Score(context.Background(), rows, func(done, total int) { progress = append(progress, done) })
	if err != nil {
		t.Fatal(err)
	}
	if failed != 2 || len(reports) != 2 || !strings.Contains(reports[0], "row 1 (id \"a\"): response 3:") || !strings.Contains(reports[0], "more than the 50") ||
		!strings.Contains(reports[1], "in.jsonl:3: response 0: the prompt has no text") {
		t.Errorf("failed %d, reports %q", failed, reports)
	}
	if len(progress) == 0 || progress[len(progress)-1] != 3 {
		t.Errorf("progress %v, want it to end at 3", progress)
	}
	// Each score equals the sequence's own score, computed alone.
	for _, r := range rows {
		for j, resp := range r.Responses {
			ids, err := rm.Encode(r.Prompt, resp)
			if err != nil || len(ids) > 50 {
				if !math.IsNaN(r.Scores[j]) {
					t.Errorf("row %s response %d: score %v, want NaN", r.ID, j, r.Scores[j])
				}
				continue
			}
			alone, err := rm.ScoreTokens(context.Background(), [][]int32{ids})
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(r.Scores[j] - alone[0]); !(d <= 1e-5*math.Abs(alone[0])) {
				t.Errorf("row %s response %d: score %v in its row, %v alone", r.ID, j, r.Scores[j], alone[0])
			}
		}
	}
}

// A bfloat16 reward model stays bfloat16 in memory (a frozen base, mapped
// from its files) and scores bit for bit as its float32-widened twin does.
func TestRewardModelBF16(t *testing.T) {
	g := readRewardGolden(t)
	src, err := safetensors.OpenCheckpoint(rewardDir)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, name := range src.Names() {
		info, _ := src.Info(name)
		d, err := src.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.BF16, Shape: info.Shape, Data: d})
	}
	src.Close()
	dir := t.TempDir()
	if err := safetensors.Write(filepath.Join(dir, safetensors.SingleFileName), ts, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(rewardDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	rm, err := loadRewardWeights(dir, RewardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	if !rm.Model.Params.Frozen {
		t.Error("the bf16 reward model was widened to float32 in memory")
	}
	wide, err := loadRewardWeights(dir, RewardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wide.Close()
	if wide.Model, _, err = model.LoadTrunk(dir); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := rm.ScoreTokens(ctx, g.Sequences)
	if err != nil {
		t.Fatal(err)
	}
	want, err := wide.ScoreTokens(ctx, g.Sequences)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Errorf("sequence %d: %v held in bf16, %v widened", i, got[i], want[i])
		}
	}
	// Rounding the weights to bfloat16 moves the scores, within bf16's
	// precision of PyTorch's float32 ones.
	for i := range want {
		if d := math.Abs(got[i] - g.Scores[i]); d > 0.05*math.Abs(g.Scores[i])+1e-3 {
			t.Errorf("sequence %d: %v, PyTorch's float32 %v", i, got[i], g.Scores[i])
		}
	}
}
