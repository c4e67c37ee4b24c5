package model

import (
	"strings"

	"github.com/relupo/relupo/safetensors"
)

// ScoreHeadTensor is the classification head of a Hugging Face
// *ForSequenceClassification checkpoint ([num_labels, hidden], no bias),
// which such a checkpoint holds instead of lm_head.weight.
const ScoreHeadTensor = "score.weight"

// SequenceClassifier reports whether config.json's "architectures" names a
// *ForSequenceClassification class (LlamaForSequenceClassification,
// MistralForSequenceClassification, Qwen2ForSequenceClassification, …): a
// checkpoint with the decoder trunk and a score head, and no lm_head.
func (c Config) SequenceClassifier() bool {
	archs, _ := c.Raw["architectures"].([]any)
	for _, a := range archs {
		if s, ok := a.(string); ok && strings.HasSuffix(s, "ForSequenceClassification") {
			return true
		}
	}
	return false
}

// GatingRewardModel reports whether config.json's "architectures" names
// LlamaForRewardModelWithGating, ArmoRM's architecture: the decoder trunk
// with a multi-objective regression layer and a gating network (tensors
// regression_layer.weight, reward_transform_matrix and gating.*, which
// package score reads), and no lm_head.
func (c Config) GatingRewardModel() bool {
	archs, _ := c.Raw["architectures"].([]any)
	for _, a := range archs {
		if a == "LlamaForRewardModelWithGating" {
			return true
		}
	}
	return false
}

// LoadTrunk reads a model folder for its final hidden states only (see
// FinalHidden), as a reward model is read: like Load, but the checkpoint
// need not hold lm_head.weight, and the score head of a
// *ForSequenceClassification checkpoint is allowed (and left for the
// caller to read, as package score does). The returned model's Config has
// TieWordEmbeddings set, so that no lm_head is allocated: Params.LMHead is
// the embedding matrix, not the checkpoint's output layer, and the model
// must not be used for log-probs, logits or decoding.
func LoadTrunk(dir string) (*Model, safetensors.DType, error) { return load(dir, true) }

// FinalHidden runs the decoder trunk (embedding, every layer and the final
// norm) over a packed batch and returns the final normalized hidden states
// [tokens, hidden]: row t is the state at token t of b.Tokens, the state a
// *ForSequenceClassification head reads (transformers applies score to
// the last hidden state, after model.norm). Sequences continuing a prefix
// (Batch.Prefix) see it as in Forward. The slice is the workspace's and is
// overwritten by the next pass with ws. No logits are computed.
func (m *Model) FinalHidden(ws *Workspace, b *Batch) ([]float32, error) {
	c := m.Config
	if err := b.validate(c); err != nil {
		return nil, err
	}
	if err := m.checkLoRA(); err != nil {
		return nil, err
	}
	ws.reserve(c, len(b.Tokens), m.LoRA)
	m.trunk(ws, b, false)
	return ws.xnF[:len(b.Tokens)*c.HiddenSize], nil
}
