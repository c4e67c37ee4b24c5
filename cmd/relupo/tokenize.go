package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/tokenizer"
	"github.com/spf13/cobra"
)

// tokenizeOptions are the flags of `relupo tokenize`.
type tokenizeOptions struct {
	tokenizer         string
	input             string
	addSpecialTokens  bool
	decode            bool
	skipSpecialTokens bool
}

func newTokenizeCmd() *cobra.Command {
	var opts tokenizeOptions
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer PATH",
		Short: "Encode or decode JSONL lines with a Hugging Face tokenizer",
		Long: `Reads JSON lines from stdin (or --input) and writes one JSON line per input line.

  {"text": "..."}                                       -> {"ids": [...], "tokens": [...]}
  {"messages": [{"role", "content"}, ...],
   "add_generation_prompt": false,
   "chat_template_kwargs": {"enable_thinking": false}} -> {"text": rendered, "ids": [...]}
  with --decode: {"ids": [...]}                         -> {"text": "..."}

PATH is a tokenizer.json or a model folder holding one. "text" lines are encoded
without special tokens (such as Llama's BOS <s>) unless --add-special-tokens is
given, which adds them as the tokenizer's post-processor does (transformers'
add_special_tokens=True). Messages are rendered with
the chat template of the folder's tokenizer_config.json (or chat_template.jinja) and
encoded without adding special tokens, as the template already writes them;
chat_template_kwargs (optional) are extra template variables, as
apply_chat_template's keyword arguments.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.tokenizer == "" {
				return usagef("tokenize: --tokenizer is required (see 'relupo tokenize --help')")
			}
			in := cmd.InOrStdin()
			if opts.input != "" && opts.input != "-" {
				f, err := os.Open(opts.input)
				if err != nil {
					return fmt.Errorf("tokenize: %w", err)
				}
				defer f.Close()
				in = f
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			if err := runTokenize(opts, in, out); err != nil {
				out.Flush()
				return err
			}
			return out.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.tokenizer, "tokenizer", "", "tokenizer.json, or a model folder holding one (required)")
	f.StringVar(&opts.input, "input", "", "read JSON lines from this file instead of stdin")
	f.BoolVar(&opts.addSpecialTokens, "add-special-tokens", false, `add the tokenizer's special tokens (such as BOS) to "text" lines`)
	f.BoolVar(&opts.decode, "decode", false, `decode {"ids": [...]} lines to {"text": ...}`)
	f.BoolVar(&opts.skipSpecialTokens, "skip-special-tokens", false, "with --decode, leave special tokens out of the text")
	return cmd
}

// tokenizeLine is one input line; which fields are set decides what is done.
type tokenizeLine struct {
	Text                *string        `json:"text"`
	Messages            []chat.Message `json:"messages"`
	AddGenerationPrompt bool           `json:"add_generation_prompt"`
	ChatTemplateKwargs  map[string]any `json:"chat_template_kwargs"`
	IDs                 []int          `json:"ids"`
}

// runTokenize processes the JSON lines of in and writes the results to out.
func runTokenize(opts tokenizeOptions, in io.Reader, out io.Writer) error {
	tk, err := tokenizer.Load(opts.tokenizer)
	if err != nil {
		return err
	}
	var tmpl *chat.Template // loaded on the first "messages" line
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	r := bufio.NewReaderSize(in, 1<<20)
	for lineNo := 1; ; lineNo++ {
		raw, readErr := r.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return fmt.Errorf("tokenize: reading line %d: %w", lineNo, readErr)
		}
		if line := bytes.TrimSpace(raw); len(line) > 0 {
			result, err := tokenizeOne(opts, tk, &tmpl, line)
			if err != nil {
				return fmt.Errorf("tokenize: line %d: %w", lineNo, err)
			}
			if err := enc.Encode(result); err != nil {
				return fmt.Errorf("tokenize: writing line %d: %w", lineNo, err)
			}
		}
		if readErr != nil {
			return nil
		}
	}
}

func tokenizeOne(opts tokenizeOptions, tk *tokenizer.Tokenizer, tmpl **chat.Template, line []byte) (any, error) {
	var in tokenizeLine
	if err := json.Unmarshal(line, &in); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if opts.decode {
		if in.IDs == nil {
			return nil, errors.New(`with --decode each line needs "ids"`)
		}
		return struct {
			Text string `json:"text"`
		}{tk.Decode(in.IDs, opts.skipSpecialTokens)}, nil
	}
	switch {
	case in.Text != nil && in.Messages == nil:
		ids, err := tk.Encode(*in.Text, opts.addSpecialTokens)
		if err != nil {
			return nil, err
		}
		tokens := make([]string, len(ids))
		for i, id := range ids {
			tokens[i], _ = tk.Token(id)
		}
		return struct {
			IDs    []int    `json:"ids"`
			Tokens []string `json:"tokens"`
		}{ids, tokens}, nil
	case in.Messages != nil && in.Text == nil:
		if *tmpl == nil {
			cfg, err := tokenizer.LoadConfig(opts.tokenizer)
			if err != nil {
				return nil, err
			}
			if cfg.ChatTemplate == "" {
				return nil, fmt.Errorf("%s has no chat template", opts.tokenizer)
			}
			if *tmpl, err = chat.New(cfg.ChatTemplate, cfg.SpecialTokens()); err != nil {
				return nil, err
			}
		}
		text, err := (*tmpl).RenderWith(in.Messages, in.AddGenerationPrompt, in.ChatTemplateKwargs)
		if err != nil {
			return nil, err
		}
		ids, err := tk.Encode(text, false)
		if err != nil {
			return nil, err
		}
		return struct {
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		}{text, ids}, nil
	}
	return nil, errors.New(`want exactly one of "text" or "messages"`)
}
