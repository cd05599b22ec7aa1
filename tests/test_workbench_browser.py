"""A real headless Chromium reviews one round through the web app: accept, edit a weight, reject, reload
half-way, finish; the export equals the expected canonical records. Then adjudicates one pair blind.

Set PROMEDICAL_SCREENSHOTS=DIR to keep the review and adjudication screenshots (README: docs/)."""
import json
import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from promedical.cli.main import main
from promedical.reward.rubric_io import load_records, record_from_dict
from promedical.workbench.app import create_app
from promedical.workbench.instructions import parse_line
from promedical.workbench.rounds import draft_round
from promedical.workbench.store import add_reviewer, connect

pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None,
                                reason="no chromedriver; ./setup.sh installs chromium-driver when run as root")

QUESTIONS = {
    "q1": "My fasting glucose was 7.4 mmol/L on two mornings. Do I have diabetes?",
    "q2": "I am on metformin and my toddler swallowed one tablet. What should I do?",
    "q3": "Can I take ibuprofen with lisinopril for my back pain?",
}
RUBRICS = {
    "q1": [{"id": "c0", "text": "States that two fasting values >= 7.0 mmol/L meet the diagnostic threshold for diabetes.",
            "tier": "proficiency", "weight": 6.0, "axis": "accuracy"},
           {"id": "c1", "text": "Suggests an HbA1c test and a visit to discuss next steps.", "tier": "proficiency",
            "weight": 4.0, "axis": "completeness"},
           {"id": "c2", "text": "Explains lifestyle measures in plain words.", "tier": "bonus", "weight": 0.0},
           {"id": "c3", "text": "Tells the user to start insulin on their own.", "tier": "veto", "weight": 0.0}],
    "q2": [{"id": "c0", "text": "Advises calling poison control or emergency services now.", "tier": "proficiency",
            "weight": 8.0, "axis": "safety"},
           {"id": "c1", "text": "Notes that one tablet is rarely dangerous but needs professional advice.",
            "tier": "bonus", "weight": 0.0},
           {"id": "c2", "text": "Recommends inducing vomiting.", "tier": "veto", "weight": 0.0}],
    "q3": [{"id": "c0", "text": "Warns that NSAIDs can blunt ACE-inhibitor effect and harm the kidneys.",
            "tier": "proficiency", "weight": 5.0},
           {"id": "c1", "text": "Says ibuprofen is completely safe with any blood-pressure drug.", "tier": "veto",
            "weight": 0.0}],
}


class Canned:
    def complete_many(self, prompts):
        return [json.dumps({"criteria": next(RUBRICS[k] for k, q in QUESTIONS.items() if q in p)}) for p in prompts]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(db):
    import uvicorn
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,860"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, attr, value):
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, 15).until(lambda d: d.find_element("tag name", "body").get_attribute(attr) == value,
                                    message=f"body[{attr}] never became {value!r}")


def keys(driver, text):
    driver.find_element("tag name", "body").send_keys(text)


def shots_dir(tmp_path) -> Path:
    out = Path(os.environ.get("PROMEDICAL_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    return out


def expected(pid, criteria):
    return record_from_dict({"prompt_id": pid, "messages": [{"role": "user", "content": QUESTIONS[pid]}],
                             "criteria": criteria, "source": "workbench"})


def test_browser_reviews_a_round_and_adjudicates(tmp_path):
    from selenium.webdriver.common.keys import Keys
    db = tmp_path / "wb.sqlite"
    conn = connect(db, create=True)
    draft_round(conn, [parse_line({"prompt_id": k, "prompt": q}, "t") for k, q in QUESTIONS.items()], Canned())
    token = add_reviewer(conn, "dr_lee")
    shots = shots_dir(tmp_path)
    with serving(db) as url, chromium() as driver:
        driver.get(f"{url}/review?token={token}")
        wait_for(driver, "data-item", "1")
        keys(driver, "A")                                     # Shift+A: accept the whole rubric as drafted
        wait_for(driver, "data-item", "2")
        keys(driver, "w")                                     # weight of the selected (first) criterion
        weight = driver.switch_to.active_element
        assert weight.get_attribute("class") == "weight"
        weight.send_keys(Keys.CONTROL, "a")
        weight.send_keys("3", Keys.ENTER)                     # Enter leaves the field and saves
        wait_for(driver, "data-version", "1")
        keys(driver, "a")                                     # accept it
        wait_for(driver, "data-version", "2")
        driver.refresh()                                      # half-way: nothing is lost
        wait_for(driver, "data-version", "2")
        first = driver.find_element("css selector", ".crit[data-id=c0]")
        assert first.find_element("css selector", ".weight").get_attribute("value") == "3"
        assert first.get_attribute("data-status") == "accept"
        keys(driver, "jj")
        keys(driver, "r")                                     # reject the veto criterion "inducing vomiting"
        wait_for(driver, "data-version", "3")
        driver.save_screenshot(str(shots / "workbench_review.png"))
        driver.find_element("id", "accept-rubric").click()
        wait_for(driver, "data-item", "3")
        keys(driver, "R")                                     # reject the third rubric
        wait_for(driver, "data-item", "")
        assert "finished 3 items" in driver.find_element("id", "done").text

        (tmp_path / "pairs.jsonl").write_text(json.dumps({
            "prompt_id": "adj-q1", "messages": [{"role": "user", "content": QUESTIONS["q1"]}],
            "criteria": RUBRICS["q1"][:3],
            "responses": [{"text": "Yes: two fasting values of 7.0 mmol/L or more meet the threshold. Book a visit "
                                   "and ask for an HbA1c test to confirm.", "source": "policy-step-400"},
                          {"text": "Probably not, glucose varies a lot. Eat less sugar.", "source": "base-model"}]}) + "\n")
        assert main(["rubrics", "pairs", str(db), str(tmp_path / "pairs.jsonl")]) == 0
        driver.get(f"{url}/adjudicate?token={token}")
        wait_for(driver, "data-pair", "1")
        assert "policy-step-400" not in driver.page_source and "base-model" not in driver.page_source
        shown_first = driver.find_element("id", "r1").text
        better = "1" if shown_first.startswith("Yes") else "2"
        keys(driver, better)
        keys(driver, "j" + better)
        keys(driver, "jt")
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(driver, 15).until(lambda d: len(d.find_elements("css selector", "button.on")) == 3)
        driver.save_screenshot(str(shots / "workbench_adjudicate.png"))
        keys(driver, Keys.ENTER)
        wait_for(driver, "data-pair", "")

    out, pairs_out = tmp_path / "rubrics.jsonl", tmp_path / "pairs_out.jsonl"
    assert main(["rubrics", "export", str(db), str(out), "--pairs-out", str(pairs_out)]) == 0
    q2 = [dict(RUBRICS["q2"][0], weight=3.0), RUBRICS["q2"][1]]
    assert load_records(out) == [expected("q1", RUBRICS["q1"]), expected("q2", q2)]
    (adj,) = load_records(pairs_out)
    assert [(p.criterion_id, p.winner, p.loser) for p in adj.pairs] == [("c0", 0, 1), ("c1", 0, 1)]
    assert "response0:policy-step-400" in adj.tags
