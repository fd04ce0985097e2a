"""Noise of RateRNN, checked statistically: the additive convention (stationary variance σ²
for every dt) and the multiplicative rate noise η ~ U(1−σ_n, 1+σ_n) clipped at 0.

Every check has a false-alarm probability of about 1e-4 or less (the seed is printed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import neurodyn as nd
from neurodyn.models import RateRNN

P_MIN = 1e-4
N, B = 64, 64


def _variance_interval(n, sigma2, p=P_MIN):
    """Two-sided interval for the sample variance of n draws of N(0, σ²) (χ² with n−1 dof)."""
    lo, hi = stats.chi2.ppf([p / 2, 1 - p / 2], n - 1)
    return sigma2 * lo / (n - 1), sigma2 * hi / (n - 1)


@pytest.mark.parametrize("alpha", [0.05, 0.5])
def test_additive_noise_stationary_variance_does_not_depend_on_dt(alpha, getkey):
    """Leak only (W = 0, no input): x ← (1−α)x + σ√(1−(1−α)²) ξ has stationary variance σ²
    and lag-one autocorrelation 1−α. Started at 0, after T steps the variance deficit is
    σ²(1−α)^{2T} < 1e-10."""
    sigma, tau = 0.7, 2.0
    net = RateRNN(
        N,
        0,
        1,
        tau=tau,
        dt=alpha * tau,
        activation="linear",
        spectral_radius=0.0,
        noise_std=sigma,
        bias=False,
        key=getkey(),
    )
    assert not np.any(np.asarray(net.weights().W))
    n_steps = int(np.ceil(12 / alpha))
    inputs = jnp.zeros((B, n_steps, 0))
    states, _ = jax.jit(lambda k: nd.models.simulate(net, inputs, key=k))(getkey())
    final = np.asarray(states[:, -1]).ravel()  # B·N independent draws
    assert stats.kstest(final / sigma, "norm").pvalue > P_MIN
    lo, hi = _variance_interval(final.size, sigma**2)
    assert lo < np.var(final, ddof=1) < hi
    # the naive σ√(2α) scaling would give σ²/(1 − α/2): outside the interval at α = 0.5
    if alpha == 0.5:
        assert not lo < sigma**2 / (1 - alpha / 2) < hi
    previous = np.asarray(states[:, -2]).ravel()
    rho = 1 - alpha
    rho_hat = np.corrcoef(previous, final)[0, 1]
    assert abs(rho_hat - rho) < 4.5 * (1 - rho**2) / np.sqrt(final.size)


def test_additive_noise_scale_tends_to_euler_maruyama():
    for alpha in (1e-2, 1e-4):
        net = RateRNN(2, tau=1.0, dt=alpha, noise_std=0.3, key=jax.random.PRNGKey(0))
        np.testing.assert_allclose(net.process_noise_scale, 0.3 * np.sqrt(2 * alpha), rtol=alpha)


def _eta(net, key, n_steps):
    noise = net.sample_noise(key, n_steps)
    now, nxt = np.asarray(noise["rate_now"]), np.asarray(noise["rate_next"])
    np.testing.assert_array_equal(nxt[:-1], now[1:])  # the rates of x_{t+1} drive step t+1
    assert now.shape == (n_steps, net.n_neurons)
    return now


def test_multiplicative_noise_is_uniform_and_independent(getkey):
    sigma_n = 0.4
    net = RateRNN(40, rate_noise=sigma_n, key=getkey())
    eta = _eta(net, getkey(), 2000)
    assert stats.kstest(eta.ravel(), "uniform", args=(1 - sigma_n, 2 * sigma_n)).pvalue > P_MIN
    # independence across units: off-diagonal correlations ~ N(0, 1/T)
    n_steps = eta.shape[0]
    corr = np.corrcoef(eta.T)
    off = corr[~np.eye(40, dtype=bool)]
    assert np.max(np.abs(off)) < 5.5 / np.sqrt(n_steps)
    assert abs(np.mean(off**2) * n_steps - 1) < 0.25
    # independence across time: lag-one autocorrelation of each unit
    lag = np.array([np.corrcoef(eta[:-1, i], eta[1:, i])[0, 1] for i in range(40)])
    assert np.max(np.abs(lag)) < 5.5 / np.sqrt(n_steps)


def test_multiplicative_noise_is_clipped_at_zero(getkey):
    sigma_n = 1.5
    net = RateRNN(40, rate_noise=sigma_n, key=getkey())
    eta = _eta(net, getkey(), 500).ravel()
    assert np.all(eta >= 0)
    p_zero = (sigma_n - 1) / (2 * sigma_n)  # mass of U(−0.5, 2.5) below 0
    assert abs(np.mean(eta == 0) - p_zero) < 5 * np.sqrt(p_zero * (1 - p_zero) / eta.size)
    positive = eta[eta > 0]
    assert stats.kstest(positive, "uniform", args=(0, 1 + sigma_n)).pvalue > P_MIN


def test_multiplicative_noise_scales_the_rates_that_are_read_out(getkey):
    """With W = 0 and a constant state, y = W_out (η ⊙ φ(x)): the per-step output varies
    exactly as η does (mean W_out φ(x), and the variance of η, σ_n²/3, per unit)."""
    sigma_n = 0.5
    net = RateRNN(
        30,
        0,
        1,
        activation="relu",
        spectral_radius=0.0,
        rate_noise=sigma_n,
        bias=False,
        readout_bias=False,
        tau=10.0,
        dt=1.0,
        key=getkey(),
    )
    # W = 0, b = 0, no input: the step maps x to 0.9 x whatever the noise, and reads out
    # y = W_out (η ⊙ relu(0.9 x))
    x = jnp.abs(jax.random.normal(getkey(), (30,))) + 0.5
    noise = net.sample_noise(getkey(), 4000)
    new_x, ys = jax.vmap(lambda e: net.step(x, jnp.zeros(0), e))(noise)
    np.testing.assert_allclose(new_x, np.broadcast_to(0.9 * np.asarray(x), new_x.shape))
    w = np.asarray(net.W_out[:, 0]) * 0.9 * np.asarray(x)
    expected_var = sigma_n**2 / 3 * np.sum(w**2)
    lo, hi = _variance_interval(ys.size, expected_var)
    # y is a sum of 30 independent uniforms (excess kurtosis < 0): the Gaussian χ² interval
    # is conservative
    assert lo < np.var(np.asarray(ys), ddof=1) < hi
    mean_err = abs(np.mean(np.asarray(ys)) - np.sum(w))
    assert mean_err < 4.5 * np.sqrt(expected_var / ys.size)


def test_noise_is_per_trial_and_reproducible(getkey):
    net = RateRNN(8, 2, 2, noise_std=0.1, rate_noise=0.2, key=getkey())
    key = getkey()
    a = nd.models.batch_noise(net, key, 3, 6)
    b = nd.models.batch_noise(net, key, 3, 6)
    for name in ("process", "rate_now"):
        assert a[name].shape == (3, 6, 8)  # batch-first, as the inputs
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.allclose(a[name][0], a[name][1])
