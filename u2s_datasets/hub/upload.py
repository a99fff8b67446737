"""The upload, through huggingface_hub's HfApi: repository, gating, data and provenance, then the card alone."""

from pathlib import Path
from typing import Sequence

from .. import __version__
from .card import CARD_FILE
from .encode import DATA_DIR
from .errors import PublishError


def upload(folder: Path, files: Sequence[str], repo_id: str, *, private=True, gated=None, token=None, endpoint=None) -> tuple:
    """Repository, gating, data + provenance in one commit, and the card last, alone; (url, commit ids).

    Until the card commit lands, the repository holds no README.md (an older one is deleted
    in the data commit), so nothing claims the upload is complete.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(endpoint=endpoint, token=token, library_name="u2s-datasets", library_version=__version__)
    step = "creating the repository"
    commits = []
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        step = "reading the repository's settings"
        info = api.dataset_info(repo_id)
        if private and not info.private:
            raise PublishError(
                f"{repo_id} already exists and is public; refusing to upload into it as private=True asks. "
                "Make it private first, or publish with private=False (--public)."
            )
        if gated:
            step = "setting gated access"
            api.update_repo_settings(repo_id, repo_type="dataset", gated=gated)

        step = "committing the data and provenance"
        data = [f for f in files if f != CARD_FILE]
        existing = [s.rfilename for s in info.siblings or ()]
        stale = [p for p in existing if p == CARD_FILE or (p.startswith(DATA_DIR + "/") and p not in data)]
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(Path(folder) / p)) for p in data]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        commit = api.create_commit(repo_id, operations, repo_type="dataset",
                                   commit_message="Upload privacy-safe data and provenance (u2s-datasets)")
        commits.append(commit.oid)

        step = "uploading the dataset card"
        commit = api.create_commit(
            repo_id, [CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=str(Path(folder) / CARD_FILE))],
            repo_type="dataset", commit_message="Add dataset card (u2s-datasets)",
        )
        commits.append(commit.oid)
    except PublishError:
        raise
    except Exception as e:
        done = "nothing was committed" if not commits else "the data was committed"
        raise PublishError(
            f"Publishing {repo_id} failed while {step}: {type(e).__name__}: {e}. {done.capitalize()}; the dataset card "
            "was not uploaded, so the repository does not claim to hold a complete dataset. Run the same command again to retry."
        ) from e
    return str(url), commits
