package tokenizer

import "unicode"

// The pre-tokenizer patterns of Qwen2/Qwen3 and Llama-3 dominate their
// encoding time when run through the backtracking regexp engine, so they are
// matched by hand here. The matcher follows the alternation in order, with
// the regexp engine's backtracking resolved by hand for each alternative,
// and its equivalence with regexp2 is checked by a differential test over
// the answer-key texts and random strings (fastsplit_test.go).
const (
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// fastMatcher returns a hand-written matcher for a known pattern, or nil.
func fastMatcher(expr string) func([]rune) [][2]int {
	switch expr {
	case qwen2Pattern:
		return func(r []rune) [][2]int { return splitContractionsWordsDigits(r, 1) }
	case llama3Pattern:
		return func(r []rune) [][2]int { return splitContractionsWordsDigits(r, 3) }
	}
	return nil
}

// Character classes with the regexp engine's Unicode semantics.
func isL(r rune) bool     { return unicode.IsLetter(r) }
func isN(r rune) bool     { return unicode.IsNumber(r) }
func isS(r rune) bool     { return unicode.IsSpace(r) }
func isNL(r rune) bool    { return r == '\r' || r == '\n' }
func isOther(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

// foldEq reports whether r equals the lower-case ASCII letter c the way
// regexp2 compares under (?i:…): after unicode.ToLower. (So the Kelvin sign
// matches k but the long s ſ, already lower case, does not match s.)
func foldEq(r, c rune) bool { return unicode.ToLower(r) == c }

// splitContractionsWordsDigits returns the successive matches of the
// Qwen2 (maxDigits 1) or Llama-3 (maxDigits 3) pattern. Every position
// starts a match of one alternative, so the matches tile the text.
func splitContractionsWordsDigits(r []rune, maxDigits int) [][2]int {
	var out [][2]int
	n := len(r)
	run := func(i int, in func(rune) bool) int { // end of the run of class in from i
		for i < n && in(r[i]) {
			i++
		}
		return i
	}
	for i := 0; i < n; {
		end := -1
		// 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
		if r[i] == '\'' && i+1 < n {
			c := r[i+1]
			switch {
			case foldEq(c, 's'), foldEq(c, 't'):
				end = i + 2
			case i+2 < n && foldEq(c, 'r') && foldEq(r[i+2], 'e'),
				i+2 < n && foldEq(c, 'v') && foldEq(r[i+2], 'e'):
				end = i + 3
			case foldEq(c, 'm'):
				end = i + 2
			case i+2 < n && foldEq(c, 'l') && foldEq(r[i+2], 'l'):
				end = i + 3
			case foldEq(c, 'd'):
				end = i + 2
			}
		}
		// 2. [^\r\n\p{L}\p{N}]?\p{L}+
		if end < 0 {
			if !isNL(r[i]) && !isL(r[i]) && !isN(r[i]) && i+1 < n && isL(r[i+1]) {
				end = run(i+1, isL)
			} else if isL(r[i]) {
				end = run(i, isL)
			}
		}
		// 3. \p{N} (Qwen2) or \p{N}{1,3} (Llama-3)
		if end < 0 && isN(r[i]) {
			end = i + 1
			for end < n && end-i < maxDigits && isN(r[end]) {
				end++
			}
		}
		// 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
		if end < 0 {
			j := i
			if r[j] == ' ' && j+1 < n && isOther(r[j+1]) {
				j++
			}
			if isOther(r[j]) {
				end = run(run(j, isOther), isNL)
			}
		}
		if end < 0 {
			// r[i] is white space: alternatives 5 to 7.
			j := run(i, isS)
			last := -1 // 5. \s*[\r\n]+ ends after the run's last line break
			for k := j - 1; k >= i; k-- {
				if isNL(r[k]) {
					last = k
					break
				}
			}
			switch {
			case last >= 0:
				end = last + 1
			case j == n: // 6. \s+(?!\S) at the end of the text
				end = j
			case j-i >= 2: // 6. \s+(?!\S), leaving the last space to the next word
				end = j - 1
			default: // 7. \s+
				end = j
			}
		}
		out = append(out, [2]int{i, end})
		i = end
	}
	return out
}
