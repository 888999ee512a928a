"""Run ``idnode`` or a module with only the node image's packages importable.

    python tests/containers/runtime_only.py idnode serve ...
    python tests/containers/runtime_only.py -m node.probe

The modules named in ``$NOT_IN_IMAGE`` (comma-separated: what only the bench and dev
extras install, see ``project.modules_not_in_image``) are made unimportable first, so a
node or job that needs one fails here as it would in the image.
"""

from __future__ import annotations

import os
import runpy
import sys

sys.path.pop(0)  # this folder: its modules must not shadow anything
for name in filter(None, os.environ.get("NOT_IN_IMAGE", "").split(",")):
    sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError

args = sys.argv[1:]
if args[:1] == ["-m"] and len(args) >= 2:
    sys.argv = [args[1], *args[2:]]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
elif args[:1] == ["idnode"]:
    from node.cli import main

    sys.argv = args
    main(args[1:])
else:
    sys.exit(f"usage: {sys.argv[0]} idnode ARGS... | -m MODULE ARGS...")
