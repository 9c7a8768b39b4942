"""``qdqforge record show``: table output, errors and the subcommand registry."""

from __future__ import annotations

from pathlib import Path

from qdqforge.cli import main
from qdqforge.cli.main import SUBCOMMANDS, build_parser
from qdqforge.front.record.file import LayerRecord, write_record

GOLDEN = Path(__file__).parents[1] / "front" / "config" / "golden" / "amct_record.txt"


def test_show_prints_one_row_per_layer(capsys):
    assert main(["record", "show", str(GOLDEN)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = "layer scale_d offset_d #scale_w scale_w range shift_bit balance range"
    assert lines[0].split() == header.split()
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == ["conv1", "layer1.0.conv1", "conv_1"]
    assert rows["layer1.0.conv1"][1:5] == ["0.00392157", "-128", "2", "0.00104224"]
    assert rows["conv_1"][-3:] == ["1.04745", "..", "1.44587"]
    assert rows["conv1"][-2:] == ["-", "-"]


def test_show_shift_bits_and_empty_fields(tmp_path, capsys):
    path = tmp_path / "r.txt"
    write_record(path, {"fc": LayerRecord(shift_bit=(3, 5, 3))})
    assert main(["record", "show", str(path)]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row == ["fc", "-", "-", "-", "-", "3,5", "-"]


def test_show_marks_offsets_on_an_int16_grid(tmp_path, capsys):
    path = tmp_path / "r.txt"
    wide = LayerRecord(scale_d=1e-5, offset_d=-31853, act_type="INT16")
    write_record(path, {"fc1": LayerRecord(scale_d=0.1, offset_d=-128), "fc2": wide})
    assert main(["record", "show", str(path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows[0][:3] == ["fc1", "0.1", "-128"]
    assert rows[1][:4] == ["fc2", "1e-05", "-31853", "(INT16)"]


def test_empty_record_says_so(tmp_path, capsys):
    path = tmp_path / "r.txt"
    path.write_text("")
    assert main(["record", "show", str(path)]) == 0
    assert "empty record" in capsys.readouterr().out


def test_bad_file_is_exit_code_1_with_message(tmp_path, capsys):
    path = tmp_path / "r.txt"
    path.write_text("record { key: ")
    assert main(["record", "show", str(path)]) == 1
    assert "r.txt:1:" in capsys.readouterr().err


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "record" in capsys.readouterr().out


def test_registry_lists_record_and_tolerates_missing_modules():
    assert "qdqforge.cli.record" in SUBCOMMANDS
    parser = build_parser(["qdqforge.cli.record", "qdqforge.cli.does_not_exist"])
    assert parser.parse_args(["record", "show", "x"]).file == "x"
