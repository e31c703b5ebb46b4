"""The reconstruction metric: exact, chunk-invariant, and harmless to G."""

import pytest
import torch

from gansweep.method.reconstruction import PAPER_BATCH, ReconSettings, reconstruct
from gansweep.nets.dcgan import Generator


def make_generator(norm="bn"):
    torch.manual_seed(0)
    g = Generator(norm, 16, channels=3, width=8, code_dim=16)
    g.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        for _ in range(3):
            g(torch.randn(8, 16))
    return g


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(40, 3, 16, 16)


def test_chunk_size_does_not_change_per_image_errors(images):
    g = make_generator()
    results = [reconstruct(g, images, ReconSettings(steps=20, chunk_size=c)).errors
               for c in (1, PAPER_BATCH, len(images), None)]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=1e-4, atol=1e-7)


def test_matches_the_papers_loop_over_batches_of_32(images):
    """The paper: MSE over a batch of 32 images, RMSProp on that batch's codes."""
    g = make_generator().eval()
    batch = images[:PAPER_BATCH]
    z = torch.zeros(PAPER_BATCH, 16, requires_grad=True)
    opt = torch.optim.RMSprop([z], lr=0.01, alpha=0.9, eps=1e-6)
    for _ in range(15):
        opt.zero_grad()
        torch.nn.functional.mse_loss(g(z), batch).backward()
        opt.step()
    with torch.no_grad():
        paper = (g(z) - batch).pow(2).flatten(1).mean(1)
    ours = reconstruct(g, batch, ReconSettings(steps=15, chunk_size=PAPER_BATCH)).errors
    torch.testing.assert_close(ours, paper, rtol=1e-4, atol=1e-7)


def test_generator_is_left_untouched(images):
    g = make_generator()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    flags = [p.requires_grad for p in g.parameters()]
    reconstruct(g, images, ReconSettings(steps=5))
    after = g.state_dict()
    assert before.keys() == after.keys()
    for k in before:  # parameters and buffers (BN running statistics) identical
        assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in g.parameters())
    assert [p.requires_grad for p in g.parameters()] == flags
    assert g.training  # training mode restored
    g.eval()
    reconstruct(g, images, ReconSettings(steps=2))
    assert not g.training  # and eval mode too


def test_an_image_g_can_produce_reconstructs_to_near_zero():
    """x = G(z*) with z* reachable from zeros: the error falls to ~0 while a random image's
    stays large."""
    g = make_generator("wn").eval()
    torch.manual_seed(2)
    z_star = 0.3 * torch.randn(8, 16)
    with torch.no_grad():
        x = g(z_star)
    start = reconstruct(g, x, ReconSettings(steps=0)).mean
    found = reconstruct(g, x, ReconSettings(steps=300, lr=0.01))
    assert found.mean < 1e-3 * start
    assert found.mean < 1e-5
    noise = reconstruct(g, torch.rand(8, 3, 16, 16), ReconSettings(steps=300)).mean
    assert noise > 100 * found.mean


def test_error_is_a_mean_over_pixels_and_channels_on_the_unit_scale():
    g = make_generator().eval()
    black = torch.zeros(4, 3, 16, 16)
    rec = reconstruct(g, black, ReconSettings(steps=0))  # z = 0 for every image
    with torch.no_grad():
        out = g(torch.zeros(1, 16))[0]
    expected = out.pow(2).mean().item()
    torch.testing.assert_close(rec.errors, torch.full((4,), expected))
    assert 0.0 <= rec.mean <= 1.0
    assert rec.images.shape == black.shape and rec.codes.shape == (4, 16)


def test_works_inside_no_grad(images):
    g = make_generator()
    with torch.no_grad():
        rec = reconstruct(g, images[:4], ReconSettings(steps=3))
    assert torch.isfinite(rec.errors).all()


class SmallDevice(torch.nn.Module):
    """G on a device that holds at most `capacity` images at a time: a larger batch raises
    torch's out-of-memory error, as a GPU would (no GPU here)."""

    def __init__(self, generator, capacity: int):
        super().__init__()
        self.generator, self.capacity, self.code_dim = generator, capacity, generator.code_dim
        self.largest_run = 0

    def forward(self, z):
        if len(z) > self.capacity:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {len(z)} images)")
        self.largest_run = max(self.largest_run, len(z))
        return self.generator(z)


def test_a_chunk_that_runs_out_of_memory_is_retried_in_halves(images):
    g = make_generator()
    small = SmallDevice(g, capacity=12)
    result = reconstruct(small, images, ReconSettings(steps=10, chunk_size=len(images)))
    assert small.largest_run <= 12 and result.chunk_size == small.largest_run == 10  # 40/2/2
    exact = reconstruct(g, images, ReconSettings(steps=10, chunk_size=len(images)))
    torch.testing.assert_close(result.errors, exact.errors, rtol=1e-4, atol=1e-7)
    assert result.codes.shape == exact.codes.shape and len(result.images) == len(images)


def test_out_of_memory_for_a_single_image_is_raised():
    g = make_generator()
    with pytest.raises(torch.OutOfMemoryError):
        reconstruct(SmallDevice(g, capacity=0), torch.rand(3, 3, 16, 16),
                    ReconSettings(steps=2, chunk_size=2))


def test_the_running_test_starts_from_the_chunk_that_fitted(images, tmp_path):
    from gansweep.rundir import records
    from gansweep.training.callbacks import RunningRecon

    recon = RunningRecon(1, 1, len(images), ReconSettings(steps=3, chunk_size=64),
                         records.recon_history(tmp_path), tmp_path / "best.ckpt")
    recon.images = images
    small = SmallDevice(make_generator(), capacity=25)
    recon._test(small)
    assert recon.settings.chunk_size == 20  # 40 ran out of memory, 20 fitted
    small.capacity = 20  # a second test starts at 20: no out-of-memory retries
    calls = []
    small.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    recon._test(small)
    assert set(calls) == {20}


def test_a_labelled_reconstruction_shows_its_progress_and_an_unlabelled_one_is_silent(
        images, capsys, monkeypatch):
    import gansweep.method.reconstruction

    counted = []  # (image-steps done, total) of each bar when it closes

    class Counting(gansweep.method.reconstruction.tqdm):
        def close(self):
            counted.append((self.n, self.total))
            super().close()

    monkeypatch.setattr(gansweep.method.reconstruction, "tqdm", Counting)
    g = make_generator()
    settings = ReconSettings(steps=4, chunk_size=16)
    quiet = reconstruct(g, images, settings)
    assert capsys.readouterr().err == ""
    shown = reconstruct(g, images, settings, progress="final test")
    assert "final test:" in capsys.readouterr().err
    assert counted[-1] == (4 * len(images), 4 * len(images))  # 3 chunks x 4 steps, all counted
    assert torch.equal(shown.errors, quiet.errors)  # the bar changes nothing computed
