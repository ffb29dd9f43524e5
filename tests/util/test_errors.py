"""util/errors.py: a UserError survives pickling (DataLoader workers and torch.distributed send it
between processes)."""
from util.errors import UserError


def test_user_errors_survive_pickling():
    """DataLoader workers and torch.distributed send exceptions between processes by pickling them."""
    import pickle

    err = pickle.loads(pickle.dumps(UserError("x", every_rank=True)))
    assert str(err) == "x" and isinstance(err, UserError) and err.every_rank
