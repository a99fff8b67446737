"""Parts of a batch through three steps, the editor never waiting on the others.

``prepare`` (decoding, inspection, instruction, finishing rows that need no edit) and
``finish`` (verification, encoding) run in one worker thread, in order; ``edit`` runs in the
calling thread. While part k is edited, the worker prepares part k+1 and finishes part k-1,
so an accelerator running the editor is fed without gaps, and rows that need no edit are
done as soon as they are inspected, never behind an edit.

One worker, not more: the inspector and the verifier share detector models that are not
safe to call from two threads at once. Memory is bounded: at most three parts are alive
(one prepared, one edited, one being finished), and a part too large to share the memory
budget with two others (``small(part)`` is False) is edited with nothing else alive: the
next part is only decoded once it is finished. The steps and the order of every call on a
part are those of the sequential loop, so the output is the same.
"""

from concurrent.futures import ThreadPoolExecutor


def run_parts(parts, prepare, edit, finish, overlap: bool = True, small=lambda rows: True) -> None:
    """For each part: ``to_edit = prepare(part)``, ``edit(to_edit)``, ``finish(to_edit)``.

    ``parts`` is an iterator (it is advanced in the worker: decoding happens there too).
    With ``overlap=False`` everything runs in the calling thread, one part after the other.
    ``small(to_edit)``: whether the next part may be prepared while this one is edited.
    """
    parts = iter(parts)
    if not overlap:
        for part in parts:
            rows = prepare(part)
            edit(rows)
            finish(rows)
        return

    def prepare_next():
        part = next(parts, None)
        return None if part is None else prepare(part)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="u2s-parts") as worker:
        finishing = []
        upcoming = worker.submit(prepare_next)
        try:
            while (rows := upcoming.result()) is not None:
                concurrent = small(rows)
                if concurrent:
                    upcoming = worker.submit(prepare_next)  # part k+1 while part k is edited
                edit(rows)
                finishing.append(worker.submit(finish, rows))
                if not concurrent:
                    upcoming = worker.submit(prepare_next)  # queued after the finish: one large part alive
            for done in finishing:
                done.result()  # errors of the worker surface here, in the caller
        finally:
            upcoming.cancel()
