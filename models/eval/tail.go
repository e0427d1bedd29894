package eval

import (
	"fmt"
	"math"
)

// A false-match rate of 1e-3 measured on a few thousand impostor pairs
// rests on a handful of them. The two helpers below say how far such a
// measurement can be trusted and give a second, smoother estimate of the
// threshold.

// FMRUpperBound returns the one-sided upper confidence bound (Clopper-
// Pearson, exact) on a rate of which k events were seen in n trials: the
// largest p for which seeing at most k is still as likely as 1-conf. With
// k = 0 and conf 0.95 it is about 3/n (the rule of three).
func FMRUpperBound(k, n int, conf float64) (float64, error) {
	if n <= 0 || k < 0 || k > n || !(conf > 0 && conf < 1) {
		return 0, fmt.Errorf("eval: upper bound needs 0 <= k <= n, n > 0 and 0 < conf < 1; got k=%d n=%d conf=%v", k, n, conf)
	}
	if k == n {
		return 1, nil
	}
	alpha := 1 - conf
	// P(X <= k | p) falls as p grows; bisect for the p where it is alpha.
	lo, hi := float64(k)/float64(n), 1.0
	for range 200 {
		mid := (lo + hi) / 2
		if binomCDF(k, n, mid) > alpha {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2, nil
}

// binomCDF is P(X <= k) for X ~ Binomial(n, p), summed in logs so that n
// in the hundred thousands does not overflow.
func binomCDF(k, n int, p float64) float64 {
	if p <= 0 {
		return 1
	}
	if p >= 1 {
		return 0
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	lgN, _ := math.Lgamma(float64(n + 1))
	var sum float64
	for i := 0; i <= k; i++ {
		lgI, _ := math.Lgamma(float64(i + 1))
		lgNI, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(lgN - lgI - lgNI + float64(i)*lp + float64(n-i)*lq)
	}
	return math.Min(sum, 1)
}

// NormalTailThreshold fits a normal distribution to the impostor scores
// (leaving out NoScore, which is not a similarity) and returns the
// threshold it puts target of its mass above, with the fitted mean and
// standard deviation. Cosine similarities of unrelated faces are roughly
// normal, and the fit uses every impostor pair rather than the few in the
// tail, so it is steadier than ThresholdAtFMR on small sets; it is only as
// good as that shape, which callers should check against the empirical
// tail where there is plenty of data.
func (s Scores) NormalTailThreshold(target float64) (threshold, mean, sd float64, err error) {
	if !(target > 0 && target < 1) {
		return 0, 0, 0, fmt.Errorf("eval: target false-match rate %v is not in (0, 1)", target)
	}
	var n int
	for _, v := range s.Impostor {
		if v > NoScore {
			n++
			mean += v
		}
	}
	if n < 2 {
		return 0, 0, 0, fmt.Errorf("eval: a normal fit needs at least 2 scored impostor pairs, got %d", n)
	}
	mean /= float64(n)
	for _, v := range s.Impostor {
		if v > NoScore {
			sd += (v - mean) * (v - mean)
		}
	}
	sd = math.Sqrt(sd / float64(n-1))
	// Upper-tail quantile of the standard normal.
	z := math.Sqrt2 * math.Erfinv(1-2*target)
	return mean + z*sd, mean, sd, nil
}
