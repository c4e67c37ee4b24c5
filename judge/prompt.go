// Package judge compares two models' answers to the same instructions with
// an LLM judge behind any OpenAI-compatible /v1/chat/completions endpoint
// (a local vLLM or llama.cpp server, or a hosted API), and computes the
// statistics of two public leaderboards from the verdicts:
//
//   - AlpacaEval 2 (format "alpaca-eval"): one question per instruction in
//     AlpacaEval's weighted_alpaca_eval_gpt4_turbo prompt, the two answers
//     in a seeded random order, the preference read from the
//     log-probabilities of the verdict letters; the win rate, its standard
//     error and the length-controlled win rate exactly as AlpacaEval
//     computes them (see [Summarize] and [LengthControlled]).
//   - Arena-Hard v0.1 (format "arena-hard"): two games per question with
//     the positions swapped, five-level verdicts, and the Bradley–Terry
//     score against the baseline with a bootstrapped 95% interval (see
//     [ArenaScore]).
//
// Requests run with bounded concurrency and are retried with exponential
// backoff; every verdict is kept in a resumable on-disk cache.
package judge

import (
	"math"
	"strings"
	"unicode"
)

// PromptVersion names the AlpacaEval-format question; it is part of every
// cache key, so changing the prompt never reuses judgments made with
// another one.
const PromptVersion = "alpaca_eval_clf_gpt4_turbo-v1"

// alpacaSystem and alpacaUser are the chat messages of AlpacaEval 2's
// weighted_alpaca_eval_gpt4_turbo annotator (its alpaca_eval_clf_gpt4_turbo
// template, Apache-2.0), as AlpacaEval sends them: the template split into
// a system and a user message, each with surrounding white space removed.
// The wording must stay as it is for the verdicts to be comparable with
// the leaderboard's.
const alpacaSystem = "You are a highly efficient assistant, who evaluates and selects the best large language model (LLMs) " +
	"based on the quality of their responses to a given instruction. This process will be used to create a leaderboard " +
	"reflecting the most accurate and human-preferred answers."

const alpacaUser = `I require a leaderboard for various large language models. I'll provide you with prompts given to these models and their corresponding outputs. Your task is to assess these responses, and select the model that produces the best output from a human perspective.

## Instruction

{
    "instruction": """{instruction}""",
}

## Model Outputs

Here are the unordered outputs from the models. Each output is associated with a specific model, identified by a unique model identifier.

{
    {
        "model_identifier": "m",
        "output": """{output_1}"""
    },
    {
        "model_identifier": "M",
        "output": """{output_2}"""
    }
}

## Task

Evaluate the models based on the quality and relevance of their outputs, and select the model that generated the best output. Answer by providing the model identifier of the best model. We will use your output as the name of the best model, so make sure your output only contains one of the following model identifiers and nothing else (no quotes, no spaces, no new lines, ...): m or M.

## Best Model Identifier`

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Prompt returns the chat messages that ask the judge to compare first
// (shown as "m") with second (shown as "M"), in AlpacaEval's wording.
func Prompt(instruction, first, second string) []Message {
	r := strings.NewReplacer("{instruction}", instruction, "{output_1}", first, "{output_2}", second)
	return []Message{{Role: "system", Content: alpacaSystem}, {Role: "user", Content: strings.TrimSpace(r.Replace(alpacaUser))}}
}

// Verdicts of ParseVerdict.
const (
	VerdictNone   = 0 // unreadable
	VerdictFirst  = 1 // the output shown first ("m")
	VerdictSecond = 2 // the output shown second ("M")
	VerdictTie    = 3 // a tie
)

// ParseVerdict reads a judge's one-letter reply: VerdictFirst for "m" (or
// "1"), VerdictSecond for "M" (or "2"), VerdictTie for "tie", "draw",
// "equal" or "m=M", VerdictNone otherwise. Surrounding white space,
// quotes, asterisks, brackets and a leading "Output" are ignored, so
// `**M**`, "(m)" and "Output (M)" parse, and a reasoning model's
// "<think>…</think>" is skipped.
func ParseVerdict(reply string) int {
	s := strings.TrimSpace(reply)
	if i := strings.LastIndex(s, "</think>"); i >= 0 { // reasoning models
		s = strings.TrimSpace(s[i+len("</think>"):])
	}
	trim := func(s string) string {
		return strings.TrimFunc(s, func(r rune) bool {
			return unicode.IsSpace(r) || strings.ContainsRune("\"'`*()[]{}.:!", r)
		})
	}
	s = trim(s)
	if rest, ok := strings.CutPrefix(s, "Output"); ok {
		s = trim(rest)
	}
	switch s {
	case "m", "1":
		return VerdictFirst
	case "M", "2":
		return VerdictSecond
	}
	switch strings.ToLower(s) {
	case "tie", "draw", "equal", "m=m", "a tie", "it's a tie":
		return VerdictTie
	}
	return VerdictNone
}

// WeightedPreference is AlpacaEval's weighted verdict (its logprob_parser
// with numerator "m", denominator "m" and "M", not binarized): from the
// alternatives at the reply's first token, the probability that the first
// output shown is better, P(m) / (P(m) + P(M)), as a preference of
// 2 − that probability (1: the first output, 2: the second). Tokens must
// match "m" and "M" exactly; one of the two missing has probability 0. ok
// is false when neither is among the alternatives.
func WeightedPreference(top []TokenLogprob) (pref float64, ok bool) {
	lm, lM := math.Inf(-1), math.Inf(-1)
	for _, t := range top {
		switch t.Token {
		case "m": // a repeated token: the last one counts, as in AlpacaEval
			lm, ok = t.Logprob, true
		case "M":
			lM, ok = t.Logprob, true
		}
	}
	if !ok {
		return 0, false
	}
	// P(m)/(P(m)+P(M)) = exp(lm − logsumexp(lm, lM))
	hi := math.Max(lm, lM)
	den := hi + math.Log(math.Exp(lm-hi)+math.Exp(lM-hi))
	return 2 - math.Exp(lm-den), true
}
