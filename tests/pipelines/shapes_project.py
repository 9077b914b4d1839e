"""A user's package written into a temporary folder, and a pipeline file over it.

``shapes`` has a source of text files (one partition per file, named by the file's content, like
VideoFrames), processors that declare their fields, and a helper module the processor imports,
so tests can edit the helper and replace one input file.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = {
    "__init__.py": "",
    "helpers.py": """
        def area(width, height):
            return width * height
    """,
    "lines.py": """
        import hashlib
        from pathlib import Path
        from tidal.sources.base import Item, Partition, Source

        class Lines(Source):
            '''Each line "width height" of each *.txt file in ``folder`` is an item.'''

            def __init__(self, folder: str):
                self.folder = folder

            def partitions(self):
                found = []
                for path in sorted(Path(self.folder).glob("*.txt")):
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
                    size = len(path.read_text().splitlines())
                    found.append(Partition(f"{path.name}@{digest}", size, str(path)))
                return found

            def read(self, partition):
                path = Path(partition.payload)
                for index, line in enumerate(path.read_text().splitlines()):
                    width, height = (int(value) for value in line.split())
                    yield Item(f"{partition.id}#{index}", (width, height), {"path": path.name, "index": index})
    """,
    "measure.py": """
        from tidal import Processor
        from shapes.helpers import area

        class Measure(Processor):
            fields = {"area": int, "square": bool, "label": str}

            def process(self, batch):
                results = []
                for item in batch:
                    width, height = item.data
                    if width < 0:
                        raise ValueError(f"negative width in {item.key}")
                    results.append({"area": area(width, height), "square": width == height,
                                    "label": f"{width}x{height}"})
                return results

        class Double(Processor):
            fields = {"double": int}

            def process(self, batch):
                return [{"double": 2 * item.data["area"]} for item in batch]
    """,
}

PIPELINE = """
{
  steps: {
    shapes: {source: {"shapes.lines.Lines": {folder: "data"}}}
    measure: {from: "shapes", processor: {"shapes.measure.Measure": {}}}
    double: {from: "measure", processor: {"shapes.measure.Double": {}}, where: "square"}
    summary: {from: "measure", group_by: "path", reduce: {"tidal.reducers.Describe": {fields: ["area"]}}}
  }
  imports: ["shapes"]
  engine: {inline: {}}
}
"""




def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in a file, failing when ``old`` is not there."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
