package generate

import (
	"context"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/internal/testutil"
)

// Qwen3's template ends the generation prompt with an empty think block
// when enable_thinking is false (chat_template_kwargs), and not otherwise.
func TestPromptEncoderWithVars(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "tokenizers", "qwen3")
	rec := Record{Where: "t", Messages: []chat.Message{{Role: "user", Content: "Hi"}}}
	for _, tc := range []struct {
		vars     map[string]any
		thinkOff bool
	}{{nil, false}, {map[string]any{"enable_thinking": true}, false}, {map[string]any{"enable_thinking": false}, true}} {
		enc, err := LoadPromptEncoder(dir)
		if err != nil {
			t.Fatal(err)
		}
		enc.WithVars(tc.vars)
		ids, err := enc.EncodeAll(context.Background(), []Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		in := make([]int, len(ids[0]))
		for i, id := range ids[0] {
			in[i] = int(id)
		}
		text := enc.Tokenizer.Decode(in, false)
		if got := strings.HasSuffix(text, "<|im_start|>assistant\n<think>\n\n</think>\n\n"); got != tc.thinkOff {
			t.Errorf("vars %v: prompt %q; empty think block %v, want %v", tc.vars, text, got, tc.thinkOff)
		}
	}
}
