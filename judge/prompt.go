// Package judge compares two models' answers to the same instructions with
// an LLM judge behind any OpenAI-compatible /v1/chat/completions endpoint
// (a local vLLM or llama.cpp server, or a hosted API), in the manner of
// AlpacaEval: one pairwise question per instruction, the two answers shown
// in a seeded random order to cancel the judge's position bias, bounded
// concurrency, retries with exponential backoff, and a resumable on-disk
// cache of judgments. It reports the candidate's win rate against the
// baseline with its standard error, and AlpacaEval 2's length-controlled
// win rate (see LengthControlled).
package judge

import (
	"strings"
	"unicode"
)

// PromptVersion names the wording below; it is part of every cache key, so
// changing the prompt never reuses judgments made with another one.
const PromptVersion = "relupo-pairwise-v1"

const systemPrompt = "You are an impartial evaluator of AI assistants. You compare two responses to the same " +
	"instruction and decide which one a careful, well-informed person would prefer."

// userPrompt is filled with the instruction and the two outputs, in the
// order shown. The labels m and M follow AlpacaEval's convention of a
// one-character verdict.
const userPrompt = `Below is an instruction given to two AI assistants, followed by the response of each.

Judge which response better carries out the instruction: weigh helpfulness, correctness, relevance, depth and clarity, and whether it does what was asked. The order in which the responses appear says nothing about their quality, and a longer response is not better for being longer.

## Instruction

{instruction}

## Output (m)

{output_m}

## Output (M)

{output_M}

## Verdict

Reply with exactly one character and nothing else: "m" if Output (m) is better, "M" if Output (M) is better.`

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Prompt returns the chat messages that ask the judge to compare first
// (shown as "m") with second (shown as "M").
func Prompt(instruction, first, second string) []Message {
	r := strings.NewReplacer("{instruction}", instruction, "{output_m}", first, "{output_M}", second)
	return []Message{{Role: "system", Content: systemPrompt}, {Role: "user", Content: r.Replace(userPrompt)}}
}

// ParseVerdict reads a judge's reply: 1 when it prefers the first output
// shown ("m", or "1"), 2 for the second ("M", or "2"), 0 when the reply is
// neither. Surrounding white space, quotes, asterisks, brackets and a
// leading "Output" are ignored, so `**M**`, "(m)" and "Output (M)" parse.
func ParseVerdict(reply string) int {
	s := strings.TrimSpace(reply)
	if i := strings.Index(s, "</think>"); i >= 0 { // reasoning models
		s = strings.TrimSpace(s[i+len("</think>"):])
	}
	trim := func(s string) string {
		return strings.TrimFunc(s, func(r rune) bool {
			return unicode.IsSpace(r) || strings.ContainsRune("\"'`*()[]{}.:", r)
		})
	}
	s = trim(s)
	if rest, ok := strings.CutPrefix(s, "Output"); ok {
		s = trim(rest)
	}
	switch s {
	case "m", "1":
		return 1
	case "M", "2":
		return 2
	}
	return 0
}
