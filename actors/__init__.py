"""actors — the Ray shell: hosts, runtime, supervision, client SDK, CLI.

Layer: the top of three (``vsm`` ← ``protocol`` ← ``actors``); the only package that knows about
Ray. Ray actors here are thin adapters: receive, call the pure core in ``vsm``, carry out the
effects it returns, reply.
"""

__all__: list[str] = []
