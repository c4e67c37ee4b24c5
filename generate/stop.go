package generate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Vocabulary looks up token ids; *tokenizer.Tokenizer is one.
type Vocabulary interface {
	TokenID(token string) (int, bool)
}

// endOfTurnTokens are the markers chat templates close an assistant turn
// with. One is a stop token when the vocabulary has it and the model's chat
// template writes it.
var endOfTurnTokens = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|end_of_turn|>", "<|endoftext|>"}

// StopTokens returns the ids that end a generated answer, sorted: the
// eos_token_id of config.json (configEOS), the eos_token_id of
// generation_config.json in modelDir (a number or a list; chat models list
// their end-of-turn token there), the tokenizer's eos_token (eosToken), and
// the end-of-turn marker of the chat template (<|eot_id|>, <|im_end|>, …)
// when the vocabulary has it.
func StopTokens(modelDir string, configEOS []int, eosToken, chatTemplate string, vocab Vocabulary) ([]int, error) {
	set := map[int]bool{}
	for _, id := range configEOS {
		set[id] = true
	}
	path := filepath.Join(modelDir, "generation_config.json")
	if b, err := os.ReadFile(path); err == nil {
		var gc struct {
			EOS json.RawMessage `json:"eos_token_id"`
		}
		if err := json.Unmarshal(b, &gc); err != nil {
			return nil, fmt.Errorf("generate: %s: invalid JSON: %w", path, err)
		}
		ids, err := intOrList(gc.EOS)
		if err != nil {
			return nil, fmt.Errorf("generate: %s: eos_token_id: %w", path, err)
		}
		for _, id := range ids {
			set[id] = true
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if eosToken != "" {
		if id, ok := vocab.TokenID(eosToken); ok {
			set[id] = true
		}
	}
	for _, t := range endOfTurnTokens {
		if id, ok := vocab.TokenID(t); ok && strings.Contains(chatTemplate, t) {
			set[id] = true
		}
	}
	ids := make([]int, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// intOrList reads a JSON number, a list of numbers, or null.
func intOrList(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("want an integer or a list of integers, got %s", raw)
	}
	return list, nil
}
