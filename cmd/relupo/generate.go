package main

import (
	"fmt"
	"time"

	"github.com/relupo/relupo/generate"
	"github.com/relupo/relupo/tokenizer"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// generateOptions are the flags of `relupo generate`.
type generateOptions struct {
	model, tokenizer, input, output, format, generator, config string
	tokenLenTokenizer                                          string
	adapter                                                    string // a PEFT LoRA adapter folder run on top of model
	maxNewTokens, topK, batchSize, threads                     int
	numReturnSequences                                         int
	temperature, topP                                          float64
	seed                                                       uint64
	stop                                                       []string
	ignoreEOS                                                  bool
	templateVars                                               train.TemplateVars
}

func newGenerateCmd() *cobra.Command {
	var o generateOptions
	cmd := &cobra.Command{
		Use:   "generate --model DIR --input FILE [--output FILE] [--format jsonl|alpaca_eval|arena_hard]",
		Short: "Generate answers to prompts with a model (KV-cache decoding)",
		Long: `Reads prompts and writes one answer per prompt, in input order.

Input: JSON lines, or one JSON array of records (AlpacaEval's file layout). A record is
  {"prompt_input_ids": [...]}                 token ids, used verbatim
  {"messages": [{"role", "content"}, ...]}    a conversation
  {"question_id", "turns": [{"content"}]}     Arena-Hard v0.1 (the first turn is answered)
  {"uid", "prompt"}                           Arena-Hard (current layout)
  {"prompt": "..."}                           one user message
  {"instruction": "...", "dataset": ...}      AlpacaEval
Text goes through the model's chat template with the generation prompt and is encoded
without adding special tokens (the template writes BOS); a tokenizer without a chat
template encodes a single message as plain text with its special tokens.

Output (--format):
  jsonl        {"output_ids": [...], "output": "...", "finish_reason", "instruction"} per line
  alpaca_eval  the JSON list AlpacaEval reads: [{"instruction", "output", "generator", "dataset"}]
  arena_hard   Arena-Hard model_answer lines: for v0.1 questions {"question_id", "answer_id",
               "model_id", "choices": [{"index": 0, "turns": [{"content", "token_len"}]}],
               "tstamp", "conv_metadata"}; for uid questions {"uid", "ans_id", "model",
               "messages": [user, {"role": "assistant", "content": {"answer"}}], "tstamp",
               "metadata": {"token_len"}}. token_len counts the model's own tokens.
The evaluation formats trim white space around answers. --generator names the model
(default: the model folder's name).

--num-return-sequences K samples K answers per prompt and writes one JSON line per prompt
in the row layout 'relupo score' reads:
  {"id", "prompt": [messages], "responses": [K texts], "reference", "output_ids": [K lists],
   "finish_reasons": [K]}
id is the input's "id" (or uid, question_id), else the prompt's position from 1;
reference is the input's "reference" or "answer" (GSM8K's column), left out when absent;
pre-tokenized prompts have "prompt": [] and their "prompt_input_ids". Each prompt is
prefilled once for its K samples; sample j of prompt i draws from a stream of (--seed, i, j)
alone, so the samples do not depend on K, --batch-size or --threads, and sample 0 is the
answer a run without the flag gives. Use a --temperature above 0, or all K are equal.

Generation stops at the model's end-of-sequence ids (config.json, generation_config.json,
the tokenizer's eos_token), at the chat template's end-of-turn token (<|eot_id|>,
<|im_end|>, ...), at a --stop string, or after --max-new-tokens. --temperature 0 is greedy;
sampling is seeded per prompt, so answers do not depend on --batch-size. Progress and
tokens/s go to stderr; --output is written atomically.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := generateConfig(cmd, &o); err != nil {
				return err
			}
			return runGenerate(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model folder (config.json, safetensors, tokenizer) (required)")
	f.StringVar(&o.model, "model-name-or-path", "", "alias of --model")
	f.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) run on top of --model, without merging")
	f.StringVar(&o.config, "config", "", "YAML recipe ('relupo train --config'): its model_name_or_path and tokenizer keys apply unless --model and --tokenizer are given")
	f.StringVar(&o.tokenizer, "tokenizer", "", "folder of the tokenizer files and chat template (default: the model folder)")
	f.Var(&o.templateVars, "chat-template-kwargs", `extra chat template variables, a JSON object such as '{"enable_thinking": false}' (Qwen3, SmolLM3)`)
	f.StringVar(&o.input, "input", "", "prompts file, JSON lines or a JSON array; - for stdin (required)")
	f.StringVar(&o.output, "output", "", "answers file (default: stdout)")
	f.StringVar(&o.format, "format", generate.FormatJSONL, "output format: jsonl, alpaca_eval or arena_hard")
	f.StringVar(&o.tokenLenTokenizer, "token-len-tokenizer", "", "arena_hard: count token_len with this tokenizer folder (arena-hard-auto counts with tiktoken's gpt-4o encoding: give a tokenizer.json of o200k_base to match); default: the model's generated tokens")
	f.StringVar(&o.generator, "generator", "", "model name written to alpaca_eval and arena_hard outputs (default: the model folder's name)")
	f.IntVar(&o.maxNewTokens, "max-new-tokens", 1024, "most tokens generated per prompt")
	f.Float64Var(&o.temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	f.Float64Var(&o.topP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability mass")
	f.IntVar(&o.topK, "top-k", 0, "keep only the k most likely tokens (0: all)")
	f.Uint64Var(&o.seed, "seed", 0, "sampling seed")
	f.StringArrayVar(&o.stop, "stop", nil, "stop when the answer contains this string (repeatable); the answer ends before it")
	f.BoolVar(&o.ignoreEOS, "ignore-eos", false, "keep generating past end-of-sequence and end-of-turn tokens")
	f.IntVar(&o.numReturnSequences, "num-return-sequences", 0, "sample this many answers per prompt, written as one row per prompt (see above; jsonl only)")
	f.IntVar(&o.batchSize, "batch-size", 8, "sequences decoded together (a prompt's samples enter together)")
	f.IntVar(&o.threads, "threads", 0, "worker threads (0: all cores)")
	return cmd
}

// generateConfig takes the model and tokenizer folders from the --config
// recipe when the command line does not give them.
func generateConfig(cmd *cobra.Command, o *generateOptions) error {
	if o.config == "" {
		return nil
	}
	r := train.DefaultOptions()
	if _, err := applyYAML(&r, o.config, nil); err != nil {
		return usageError{err}
	}
	f := cmd.Flags()
	if !f.Changed("model") && !f.Changed("model-name-or-path") && r.Model != "" {
		o.model = r.Model
	}
	if !f.Changed("tokenizer") && r.Tokenizer != "" {
		o.tokenizer = r.Tokenizer
	}
	if !f.Changed("chat-template-kwargs") && len(r.ChatTemplateKwargs) > 0 {
		o.templateVars = r.ChatTemplateKwargs
	}
	return nil
}

func runGenerate(cmd *cobra.Command, o generateOptions) error {
	if o.model == "" || o.input == "" {
		return usagef("generate: --model and --input are required (see 'relupo generate --help')")
	}
	if err := generate.CheckFormat(o.format, nil); err != nil {
		return usagef("generate: --format: %v", err)
	}
	sampling := generate.Sampling{Temperature: o.temperature, TopK: o.topK, TopP: o.topP}
	if err := sampling.Validate(); err != nil {
		return usagef("generate: %v", err)
	}
	if o.maxNewTokens < 1 || o.batchSize < 1 {
		return usagef("generate: --max-new-tokens and --batch-size must be ≥ 1")
	}
	if cmd.Flags().Changed("num-return-sequences") {
		if o.numReturnSequences < 1 {
			return usagef("generate: --num-return-sequences must be ≥ 1, got %d", o.numReturnSequences)
		}
		if o.format != generate.FormatJSONL {
			return usagef("generate: --num-return-sequences writes jsonl rows (id, prompt, responses, reference), not --format %s", o.format)
		}
	}
	var countTokens func(string) (int, error)
	if o.tokenLenTokenizer != "" {
		tok, err := tokenizer.Load(o.tokenLenTokenizer)
		if err != nil {
			return fmt.Errorf("generate: --token-len-tokenizer: %w", err)
		}
		countTokens = func(s string) (int, error) {
			ids, err := tok.Encode(s, false)
			return len(ids), err
		}
	}
	stderr := cmd.ErrOrStderr()
	var last time.Time
	sum, err := generate.Job{
		Model: o.model, Adapter: o.adapter, Tokenizer: o.tokenizer, TemplateVars: o.templateVars,
		Input: o.input, In: cmd.InOrStdin(), Output: o.output, Out: cmd.OutOrStdout(),
		Format: o.format, Generator: o.generator, Threads: o.threads, CountTokens: countTokens,
		Options: generate.Options{
			MaxNewTokens: o.maxNewTokens, Sampling: sampling, Seed: o.seed, NumReturnSequences: o.numReturnSequences,
			StopStrings: o.stop, IgnoreEOS: o.ignoreEOS, BatchSize: o.batchSize,
		},
		OnStart: func(p generate.Plan) {
			samples := ""
			if p.Samples > 1 {
				samples = fmt.Sprintf(" × %d samples", p.Samples)
			}
			fmt.Fprintf(stderr, "generate: %d prompts%s, %s, stop tokens %v, %d threads\n", p.Prompts, samples, sampleDesc(p.Sampling), p.StopTokens, p.Threads)
		},
		OnDone: func(p generate.Progress) {
			if p.Done < p.Total && time.Since(last) < time.Second {
				return
			}
			last = time.Now()
			s := p.Elapsed.Seconds()
			fmt.Fprintf(stderr, "generate: %d/%d answers, %d tokens in %.1fs, %.1f tokens/s (prompts %d tokens)\n",
				p.Done, p.Total, p.GeneratedTokens, s, float64(p.GeneratedTokens)/max(s, 1e-9), p.PromptTokens)
		},
	}.Run(cmd.Context())
	if err != nil {
		return err
	}
	if sum.Path != "" {
		fmt.Fprintf(stderr, "generate: wrote %d answers to %s\n", sum.Answers, sum.Path)
	}
	return nil
}

func sampleDesc(s generate.Sampling) string {
	if s.Greedy() {
		return "greedy"
	}
	return fmt.Sprintf("temperature %g, top-k %d, top-p %g", s.Temperature, s.TopK, s.TopP)
}
