package online

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/generate"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/score"
	"github.com/relupo/relupo/train"
)

// The demonstration's vocabulary: 0 pad, 1 BOS, 2 EOS, 3 "=", then the
// symbols a, b, c, ….
const (
	demoSymbols  = 12
	demoVocab    = 4 + demoSymbols
	demoFirstSym = 4
	demoEquals   = 3
)

// DemoPattern is the verifier's pattern in the demonstration: the first
// symbol of the response is its answer.
const DemoPattern = `^(\S+)`

// DemoModel is the demonstration's policy: a small Llama (2 layers, width
// 64) over the 16-token vocabulary, randomly initialized from seed.
func DemoModel(seed uint64) *model.Model {
	c := model.Config{
		ModelType: "llama", VocabSize: demoVocab, HiddenSize: 64, IntermediateSize: 160, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 16, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 64,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: 0, DType: "float32",
		Raw: map[string]any{
			"architectures": []any{"LlamaForCausalLM"}, "model_type": "llama", "vocab_size": demoVocab, "hidden_size": 64,
			"intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
			"head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 64,
			"hidden_act": "silu", "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
			"torch_dtype": "float32",
		},
	}
	m := model.New(c)
	m.Params.Init(seed, 0.02)
	return m
}

// DemoDetokenizer writes the demonstration's tokens as text: symbols as
// letters, "=" and the special tokens by name, separated by spaces.
type DemoDetokenizer struct{}

// Decode implements generate.Detokenizer.
func (DemoDetokenizer) Decode(ids []int, skipSpecialTokens bool) string {
	words := make([]string, 0, len(ids))
	for _, id := range ids {
		switch {
		case id >= demoFirstSym && id < demoVocab:
			words = append(words, string(rune('a'+id-demoFirstSym)))
		case id == demoEquals:
			words = append(words, "=")
		case skipSpecialTokens && (id == 1 || id == 2):
		case id == 1:
			words = append(words, "<s>")
		case id == 2:
			words = append(words, "</s>")
		default:
			words = append(words, "<pad>")
		}
	}
	return strings.Join(words, " ")
}

// DemoPrompts returns n prompts of the demonstration's task, drawn from
// seed: a prompt is 3 to 6 distinct symbols followed by "=", and its
// answer is the largest symbol of the prompt (the last in the alphabet).
// A random policy answers right about one time in demoVocab; a policy
// has to read the whole prompt and compare to do better.
func DemoPrompts(n int, seed uint64) []Prompt {
	r := rand.New(rand.NewPCG(seed, 0xdeb0))
	out := make([]Prompt, n)
	for i := range out {
		k := 3 + r.IntN(4)
		perm := r.Perm(demoSymbols)[:k]
		ids := []int32{1}
		best := 0
		for _, s := range perm {
			ids = append(ids, int32(demoFirstSym+s))
			best = max(best, s)
		}
		ids = append(ids, demoEquals)
		text := DemoDetokenizer{}.Decode(toInts(ids[1:]), true)
		out[i] = Prompt{
			ID: fmt.Sprint(i + 1), IDs: ids, Reference: string(rune('a' + best)),
			Messages: []chat.Message{{Role: "user", Content: text}},
		}
	}
	return out
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// DemoOptions size the demonstration.
type DemoOptions struct {
	OutputDir string
	// Iterations, Prompts and Samples are N, the number of prompts and K.
	Iterations, Prompts, Samples int
	// LearningRate is AdamW's learning rate.
	LearningRate float64
	// Seed seeds the model, the prompts, sampling and training.
	Seed    uint64
	Threads int
	// Gamma is the γ strategy (RePO's γ = 0.5 when its Strategy is empty).
	Gamma    Gamma
	Progress Progress
}

// DefaultDemoOptions are the demonstration's settings.
func DefaultDemoOptions() DemoOptions {
	return DemoOptions{OutputDir: "relupo-online-demo", Iterations: 8, Prompts: 128, Samples: 8, LearningRate: 3e-3, Seed: 1,
		Gamma: Gamma{Strategy: GammaFixed, Value: 0.5}}
}

// DemoConfig is the online run of the demonstration: the model of
// DemoModel, the prompts of DemoPrompts, the verifier with DemoPattern,
// sampling at temperature 1 (3 tokens at most, stopping at EOS) and RePO.
func DemoConfig(o DemoOptions) (Config, error) {
	v, err := score.NewVerifier(DemoPattern)
	if err != nil {
		return Config{}, err
	}
	g := o.Gamma
	if g.Strategy == "" {
		g = Gamma{Strategy: GammaFixed, Value: 0.5}
	}
	return Config{
		Policy: DemoModel(o.Seed), Detokenizer: DemoDetokenizer{}, Prompts: DemoPrompts(o.Prompts, o.Seed), Scorer: v,
		Iterations: o.Iterations, Samples: o.Samples,
		Generate:  generate.Options{MaxNewTokens: 3, Sampling: generate.Sampling{Temperature: 1}, StopTokens: []int{2}, BatchSize: 64},
		Seed:      o.Seed,
		Loss:      pref.Config{LossType: pref.LossRePO, Beta: 2, Gamma: g.Value},
		Gamma:     g,
		Optim:     Optim{LearningRate: o.LearningRate, MaxGradNorm: 1, BatchSize: 8, Accumulation: 1},
		Compute:   train.Compute{Threads: o.Threads},
		OutputDir: o.OutputDir, Overwrite: true, Progress: o.Progress,
	}, nil
}
