"""Citations: every registered cell and task carries its paper; `rnnbench cite` prints each entry
once; the report names the cells' papers in its captions and writes them into references.bib."""

import pytest
from conftest import invoke
from test_report import results  # noqa: F401 - the fixture (pytest puts tests/ on sys.path)

import rnnbench
from rnnbench import cite
from rnnbench import report as reporting
from rnnbench.registry import TASKS, RegistryError


@pytest.mark.parametrize("name", rnnbench.list_cells())
def test_every_cell_cites_its_paper(name):
    entry = rnnbench.CELLS.get(name).citation
    assert entry.startswith("@") and cite.key(entry), name
    assert cite.bibtex_field(entry, "title") and cite.bibtex_field(entry, "year").isdigit(), name
    assert " et al. " in f" {cite.label(entry)}" or cite.label(entry).split()[-1].isdigit()


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_cites_its_source(name):
    entry = TASKS.get(name).factory.citation.strip()
    assert entry.startswith("@") and cite.key(entry) and cite.bibtex_field(entry, "year"), name


@pytest.mark.parametrize(
    "entry, expected",
    [
        (
            "@article{a, author={Jing, Li and Shen, Yichen and Tegmark, Max}, year={2017}}",
            "Jing et al. 2017",
        ),
        (
            '@article{a, author = {Hochreiter, Sepp and Schmidhuber, J{\\"u}rgen}, year = 1997}',
            "Hochreiter and Schmidhuber 1997",
        ),
        ('@misc{a, author = "Quoc V. Le", year = "2015"}', "Le 2015"),
        (
            "@article{a, author={Dub{\\v{c}}ek, Tena}, year={2017}, booktitle={Author=Year}}",
            "Dubcek 2017",
        ),
        ("@misc{parity2026, title={Parity}, year={2026}}", "parity2026 2026"),
    ],
)
def test_labels_come_from_authors_and_year(entry, expected):
    assert cite.label(entry) == expected


def test_a_citation_must_be_bibtex(scratch_cells):
    with pytest.raises(RegistryError, match="citation must be a BibTeX entry"):

        @scratch_cells.register("cited", citation="Me et al., 2026")
        def cited(input_size, hidden_size):
            """A cell."""


def test_cite_prints_each_entry_once_with_what_cites_it():
    out = invoke("cite", "--cells", "eurnn*,lstm", "--task", "copying", "--task", "adding")
    assert out.exit_code == 0, out.output
    assert out.output.count("@inproceedings{jing2017tunable,") == 1
    assert (
        out.output.count("@inproceedings{arjovsky2016unitary,") == 1
    )  # copying and adding share it
    assert "% cells eurnn, eurnn-c16, eurnn-c4, eurnn-c8, eurnn-fft, eurnn-full\n" in out.output
    assert "% tasks copying, adding\n" in out.output and "% cell lstm\n" in out.output
    assert "gru" not in out.output


def test_cite_reads_the_cells_and_tasks_of_a_results_folder(results):  # noqa: F811
    out = invoke("cite", "--results", str(results))
    assert out.exit_code == 0, out.output
    assert [line for line in out.output.splitlines() if line.startswith("%")] == [
        "% cell lstm",
        "% cell eurnn",
        "% task pmnist",
    ]  # sorted by key: hochreiter, jing, le


def test_cite_says_what_it_cannot_cite(tmp_path, scratch_cells):
    empty = invoke("cite", "--results", str(tmp_path))
    assert empty.exit_code == 2 and "no rows in" in empty.output
    assert invoke("cite", "--cells", "nope").exit_code == 2

    @scratch_cells.register("uncited")
    def uncited(input_size, hidden_size):
        """A cell without a paper."""

    out = invoke("cite", "--cells", "uncited,rnn")
    assert out.exit_code == 0
    assert (
        "warning: cell 'uncited' has no citation" in out.output
        and "@article{elman1990finding," in out.output
    )


def test_the_report_names_the_cells_papers(results, tmp_path):  # noqa: F811
    out = invoke("report", "--results", str(results), "--out", str(tmp_path / "rep"))
    assert out.exit_code == 0, out.output
    caption = "Cells: eurnn (Jing et al. 2017), lstm (Hochreiter and Schmidhuber 1997)."
    assert caption in (tmp_path / "rep" / "report.md").read_text()
    tex = next((tmp_path / "rep").glob("*.tex")).read_text()
    assert "Cells: eurnn (Jing et al. 2017)" in tex
    bib = (tmp_path / "rep" / "references.bib").read_text()
    assert all(
        bib.count(f"{{{k},") == 1 for k in ("jing2017tunable", "hochreiter1997long", "le2015simple")
    )
    rows, _ = reporting.read_results(results)
    assert "gru" not in set(rows["cell"]) and "cho2014learning" not in bib


PLUGIN_CELL = "@article{me2026, title={My cell}, author={Me, Ann and You, Bo}, year={2026}}"


def test_a_plugin_cells_folder_is_cited_and_reported_without_the_plugin(tmp_path):
    """The sweep keeps each cell's card in the results folder (store.write_cell_card), so `cite`
    and `report` name a plugin cell's paper where the plugin is not loaded."""
    from test_report import make_row

    from rnnbench import cell, store

    folder = tmp_path / "results"
    for seed in (0, 1):
        store.append_run(folder, "pmnist", make_row("my-cell", seed, 0.5), [])
    store.write_cell_card(
        folder,
        {
            **cell.card("lstm"),
            "name": "my-cell",
            "spec": "my-cell",
            "citation": PLUGIN_CELL,
            "summary": "A plugin's cell.",
        },
    )
    assert "my-cell" not in rnnbench.list_cells()
    out = invoke("cite", "--results", str(folder))
    assert out.exit_code == 0, out.output
    assert (
        "% cell my-cell\n" + PLUGIN_CELL in out.output
        and "is not registered here" not in out.output
    )
    out = invoke("report", "--results", str(folder), "--out", str(tmp_path / "rep"))
    assert out.exit_code == 0, out.output
    assert "Cells: my-cell (Me and You 2026)." in (tmp_path / "rep" / "report.md").read_text()
    assert "@article{me2026," in (tmp_path / "rep" / "references.bib").read_text()
