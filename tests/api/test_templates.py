"""/v1/templates on the real stack: CRUD, strict rendering with the caption rules, posts made from a template
(published with the rendered caption), use counts, and isolation between users."""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox.admin_client import SandboxAdmin
from tests.api.helpers import ApiUser, assert_problem, at, schedule, schedule_ok, wait_for

BAKERY = {
    "name": "Bread of the day",
    "category": "daily",
    "body": "Fresh {{bread}}, out of the oven at {{ time }} #bakery",
    "hashtags": ["#sourdough", "#breakfast"],
    "mentions": ["@our.baker"],
    "first_comment": "Ask for the {{bread}} by name",
}


async def _template(user: ApiUser, **fields: Any) -> dict[str, Any]:
    response = await user.client.post("/v1/templates", json={**BAKERY, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_read_list_change_and_delete(alice: ApiUser) -> None:
    created = await _template(alice)
    assert created["variables"] == ["bread", "time"]
    assert (created["use_count"], created["last_used_at"]) == (0, None)
    other = await _template(alice, name="Closing time", category="notices", body="Closed on {{day}}")

    got = await alice.client.get(f"/v1/templates/{created['id']}")
    assert got.status_code == 200 and got.json() == created
    page = (await alice.client.get("/v1/templates", params={"limit": 1})).json()
    assert [t["id"] for t in page["data"]] == [created["id"]] and page["next_cursor"]
    rest = (await alice.client.get("/v1/templates", params={"cursor": page["next_cursor"]})).json()
    assert [t["id"] for t in rest["data"]] == [other["id"]] and rest["next_cursor"] is None
    daily = (await alice.client.get("/v1/templates", params={"category": "daily"})).json()
    assert [t["id"] for t in daily["data"]] == [created["id"]]

    changed = await alice.client.patch(
        f"/v1/templates/{created['id']}", json={"body": "Fresh {{bread}} today", "first_comment": None}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["body"] == "Fresh {{bread}} today" and changed.json()["variables"] == ["bread"]
    taken = await alice.client.patch(f"/v1/templates/{created['id']}", json={"name": "Closing time"})
    assert_problem(taken, 409, "template_name_taken", field="name")
    assert_problem(await alice.client.post("/v1/templates", json=BAKERY), 409, "template_name_taken")

    deleted = await alice.client.delete(f"/v1/templates/{created['id']}")
    assert deleted.status_code == 204
    assert_problem(await alice.client.get(f"/v1/templates/{created['id']}"), 404, "template_not_found")


async def test_a_template_that_is_not_plain_placeholders_is_refused(alice: ApiUser) -> None:
    for body in ("Hi {{user.name}}", "{{ name | upper }}", "{{ __import__('os') }}", "{{unclosed"):
        response = await alice.client.post("/v1/templates", json={**BAKERY, "body": body})
        assert_problem(response, 422, "template_syntax_error", field="body")
    response = await alice.client.post("/v1/templates", json={**BAKERY, "first_comment": "{{a.b}}"})
    assert_problem(response, 422, "template_syntax_error", field="first_comment")
    bad = await alice.client.post(
        "/v1/templates", json={**BAKERY, "hashtags": ["bakery"], "mentions": ["@bad mention"], "name": ""}
    )
    problem = assert_problem(bad, 422, "validation_error")
    assert {error["field"] for error in problem["errors"]} == {"hashtags[0]", "mentions[0]", "name"}


async def test_render_returns_the_text_and_every_rule_it_breaks(alice: ApiUser) -> None:
    template = await _template(alice)
    ok = await alice.client.post(
        f"/v1/templates/{template['id']}/render", json={"variables": {"bread": "rye", "time": "7", "x": "-"}}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "text": "Fresh rye, out of the oven at 7 #bakery",
        "first_comment": "Ask for the rye by name",
        "hashtags": ["#sourdough", "#breakfast"],
        "mentions": ["@our.baker"],
        "valid": True,
        "violations": [],
    }

    tags = " ".join(f"#t{i}" for i in range(30))
    mentions = " ".join(f"@u{i}" for i in range(21))
    broken = await alice.client.post(
        f"/v1/templates/{template['id']}/render",
        json={"variables": {"bread": "x" * 2200, "time": f"{tags} {mentions}"}},
    )
    assert broken.status_code == 200, broken.text
    assert broken.json()["valid"] is False
    assert [(v["field"], v["code"]) for v in broken.json()["violations"]] == [
        ("text", "text_too_long"),
        ("text", "too_many_hashtags"),
        ("text", "too_many_mentions"),
        ("first_comment", "text_too_long"),
    ]

    missing = await alice.client.post(f"/v1/templates/{template['id']}/render", json={"variables": {}})
    body = assert_problem(missing, 422, "validation_error")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [
        ("variables.bread", "template_variable_missing"),
        ("variables.time", "template_variable_missing"),
    ]
    one = await alice.client.post(
        f"/v1/templates/{template['id']}/render", json={"variables": {"bread": "rye"}}
    )
    assert_problem(one, 422, "template_variable_missing", field="variables.time")
    bad_name = await alice.client.post(
        f"/v1/templates/{template['id']}/render", json={"variables": {"not a name": "x"}}
    )
    assert_problem(bad_name, 422, "validation_error")


async def test_another_users_templates_answer_404(
    alice: ApiUser, bob: ApiUser, ready: dict[str, Any]
) -> None:
    template = await _template(alice)
    url = f"/v1/templates/{template['id']}"
    assert_problem(await bob.client.get(url), 404, "template_not_found")
    assert_problem(await bob.client.patch(url, json={"name": "mine"}), 404, "template_not_found")
    assert_problem(await bob.client.post(f"{url}/render", json={"variables": {}}), 404, "template_not_found")
    assert_problem(await bob.client.delete(url), 404, "template_not_found")
    assert (await bob.client.get("/v1/templates")).json()["data"] == []
    # Bob cannot post from it either (with his own account and media it is just unknown).
    bob_ready = ready  # alice's account: bob's request names someone else's account too
    refused = await bob.client.post(
        "/v1/posts",
        json={
            "account_id": bob_ready["account"]["id"],
            "type": "IMAGE",
            "media_ids": [bob_ready["media"]],
            "template_id": template["id"],
            "variables": {"bread": "rye", "time": "7"},
        },
    )
    body = assert_problem(refused, 422, "validation_error", field="template_id")
    assert "unknown_template" in {error["code"] for error in body["errors"]}
    assert (await alice.client.get(url)).json()["use_count"] == 0


async def test_a_post_from_a_template_publishes_its_rendered_caption(
    alice: ApiUser, ready: dict[str, Any], sandbox: SandboxAdmin
) -> None:
    template = await _template(alice)
    account, media = ready["account"], ready["media"]
    post = await schedule_ok(
        alice.client,
        account["id"],
        [media],
        caption=None,
        template_id=template["id"],
        variables={"bread": "spelt", "time": "8"},
        publish_at=at(3),
    )
    assert post["caption"] == "Fresh spelt, out of the oven at 8 #bakery"
    assert post["first_comment"] == "Ask for the spelt by name"
    assert post["template_id"] == template["id"]
    used = (await alice.client.get(f"/v1/templates/{template['id']}")).json()
    assert used["use_count"] == 1 and used["last_used_at"] is not None

    published = await wait_for(alice.client, post["id"], "published", within=25)
    truth = [m for m in await sandbox.published(account["ig_user_id"]) if m["id"] == published["ig_media_id"]]
    assert truth[0]["caption"] == "Fresh spelt, out of the oven at 8 #bakery"
    for _ in range(50):
        truth = [
            m for m in await sandbox.published(account["ig_user_id"]) if m["id"] == published["ig_media_id"]
        ]
        if truth[0]["comments"]:
            break
        await asyncio.sleep(0.1)
    assert [comment["text"] for comment in truth[0]["comments"]] == ["Ask for the spelt by name"]

    # Its own first comment wins; deleting the template leaves the post's caption and clears its reference.
    own = await schedule_ok(
        alice.client,
        account["id"],
        [media],
        caption=None,
        template_id=template["id"],
        variables={"bread": "rye", "time": "9"},
        first_comment="Our own comment",
    )
    assert own["first_comment"] == "Our own comment"
    assert (await alice.client.get(f"/v1/templates/{template['id']}")).json()["use_count"] == 2
    assert (await alice.client.delete(f"/v1/templates/{template['id']}")).status_code == 204
    kept = (await alice.client.get(f"/v1/posts/{own['id']}")).json()
    assert kept["caption"] == "Fresh rye, out of the oven at 9 #bakery" and kept["template_id"] is None


async def test_a_post_takes_a_caption_or_a_template_and_every_variable(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    template = await _template(alice)
    account, media = ready["account"]["id"], ready["media"]
    both = await schedule(alice.client, account, [media], template_id=template["id"], variables={})
    assert_problem(both, 422, "caption_and_template", field="template_id")
    alone = await schedule(alice.client, account, [media], variables={"bread": "rye"})
    assert_problem(alone, 422, "variables_without_template", field="variables")
    missing = await schedule(
        alice.client, account, [media], caption=None, template_id=template["id"], variables={"bread": "rye"}
    )
    assert_problem(missing, 422, "template_variable_missing", field="variables.time")
    too_long = await schedule(
        alice.client,
        account,
        [media],
        caption=None,
        template_id=template["id"],
        variables={"bread": "x" * 2200, "time": "7"},
    )
    assert_problem(too_long, 422, "validation_error", field="caption")
    assert (await alice.client.get(f"/v1/templates/{template['id']}")).json()["use_count"] == 0
