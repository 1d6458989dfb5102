"""POST /v1/posts/batch on the real stack: valid and invalid items side by side, each with its own result in
order, each idempotent under its own key, a stagger, and isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.deps import AppServices
from tests.api.helpers import ApiUser, assert_problem, upload_ok, wait_for, workflow_runs


def _item(ready: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"account_id": ready["account"]["id"], "type": "IMAGE", "media_ids": [ready["media"]], **fields}


async def test_a_batch_mixing_valid_and_invalid_items(
    alice: ApiUser, ready: dict[str, Any], services: AppServices
) -> None:
    template = await alice.client.post("/v1/templates", json={"name": "t", "body": "Hello {{who}}"})
    start = datetime.now(UTC) + timedelta(hours=1)
    items = [
        _item(ready, caption="one", idempotency_key="k-1"),
        _item(ready, caption="#x " * 31),  # too many hashtags
        _item(ready, template_id=template.json()["id"], variables={"who": "you"}, idempotency_key="k-3"),
        _item(ready, type="NOPE"),  # not a post at all
        _item(ready, template_id=template.json()["id"]),  # a variable missing
        _item(ready, caption="draft", draft=True),
        _item(ready, caption="own time", publish_at=start.isoformat()),  # refused beside a stagger
    ]
    body = {"items": items, "stagger": {"start_at": start.isoformat(), "every_minutes": 30}}
    response = await alice.client.post("/v1/posts/batch", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    results = answer["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [201, 422, 201, 422, 422, 201, 422]
    assert (answer["created"], answer["failed"]) == (3, 4)
    assert [(r["problem"] or {}).get("code") for r in results] == [
        None,
        "too_many_hashtags",
        None,
        "validation_error",
        "template_variable_missing",
        None,
        "publish_at_and_stagger",
    ]
    assert results[1]["problem"]["field"] == "caption" and results[1]["post"] is None
    assert results[3]["problem"]["errors"][0]["field"] == "type"
    posts = [r["post"] for r in results]
    assert posts[2]["caption"] == "Hello you"
    assert [datetime.fromisoformat(posts[i]["publish_at"]) for i in (0, 2, 5)] == [
        start,
        start + timedelta(minutes=60),
        start + timedelta(minutes=150),
    ]
    assert [posts[i]["status"] for i in (0, 2, 5)] == ["scheduled", "scheduled", "draft"]
    for index in (0, 2):
        await wait_for(alice.client, posts[index]["id"], "scheduled")
        assert len(await workflow_runs(services, posts[index]["id"])) == 1
    assert await workflow_runs(services, posts[5]["id"]) == []

    # Retried as a whole: the keyed items are answered with their posts, created once.
    again = (await alice.client.post("/v1/posts/batch", json=body)).json()["results"]
    assert [r["status"] for r in again] == [200, 422, 200, 422, 422, 201, 422]
    assert [again[i]["post"]["id"] for i in (0, 2)] == [posts[0]["id"], posts[2]["id"]]
    assert again[5]["post"]["id"] != posts[5]["id"]  # no key: a new draft
    assert (await alice.client.get(f"/v1/templates/{template.json()['id']}")).json()["use_count"] == 1
    # The same key with a different item is that item's problem, not the batch's.
    changed = (
        await alice.client.post(
            "/v1/posts/batch", json={"items": [_item(ready, caption="two", idempotency_key="k-1")]}
        )
    ).json()
    assert changed["results"][0]["problem"]["code"] == "idempotency_key_reused"


async def test_a_batch_that_is_not_a_list_of_items_is_refused_whole(
    alice: ApiUser, ready: dict[str, Any]
) -> None:
    bodies: list[dict[str, Any]] = [
        {"items": []},
        {"items": [_item(ready)] * 101},
        {"items": [1]},
        {"items": [{}], "stagger": {}},
    ]
    for body in bodies:
        assert_problem(await alice.client.post("/v1/posts/batch", json=body), 422, "validation_error")
    bad_key = await alice.client.post("/v1/posts/batch", json={"items": [_item(ready, idempotency_key="")]})
    assert bad_key.json()["results"][0]["problem"]["field"] == "idempotency_key"


async def test_another_users_account_in_a_batch_is_unknown(
    alice: ApiUser, bob: ApiUser, ready: dict[str, Any]
) -> None:
    response = await bob.client.post("/v1/posts/batch", json={"items": [_item(ready, caption="mine")]})
    assert response.status_code == 200
    problem = response.json()["results"][0]["problem"]
    assert {error["code"] for error in problem["errors"]} == {"unknown_account", "unknown_media"}
    assert (await alice.client.get("/v1/posts")).json()["data"] == []


async def test_a_csv_batch(alice: ApiUser, ready: dict[str, Any]) -> None:
    account, media = ready["account"]["id"], ready["media"]
    second = await upload_ok(alice.client)
    start = datetime.now(UTC) + timedelta(hours=2)
    csv = (
        "\ufeffaccount_id,type,media_ids,caption,variables,draft,idempotency_key\r\n"
        f'{account},IMAGE,{media},"Rye, today #bakery",,,csv-1\r\n'
        f"{account},CAROUSEL,{media}; {second},Two loaves,,true,\r\n"
        f"{account},IMAGE,x,Broken,,,\r\n"
        f'{account},IMAGE,{media},,"{{""a"": ""b""}}",,\r\n'
    )
    response = await alice.client.post(
        "/v1/posts/batch",
        content=csv.encode(),
        headers={"content-type": "text/csv; charset=utf-8"},
        params={"stagger_start_at": start.isoformat(), "stagger_every_minutes": 10},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422, 422]
    assert results[0]["post"]["caption"] == "Rye, today #bakery"
    assert datetime.fromisoformat(results[0]["post"]["publish_at"]) == start
    assert results[1]["post"]["status"] == "draft"
    assert [m["media_id"] for m in results[1]["post"]["media"]] == [media, second]
    assert datetime.fromisoformat(results[1]["post"]["publish_at"]) == start + timedelta(minutes=10)
    assert results[2]["problem"]["errors"][0]["field"] == "media_ids[0]"
    assert results[3]["problem"]["code"] == "variables_without_template"

    unknown = await alice.client.post(
        "/v1/posts/batch", content=b"account_id,colour\n1,red\n", headers={"content-type": "text/csv"}
    )
    assert_problem(unknown, 422, "csv_columns")
    not_utf8 = await alice.client.post(
        "/v1/posts/batch", content=b"caption\n\xff\n", headers={"content-type": "text/csv"}
    )
    assert_problem(not_utf8, 400, "malformed_csv")
    empty = await alice.client.post("/v1/posts/batch", content=b"", headers={"content-type": "text/csv"})
    assert_problem(empty, 422, "csv_header_missing")
    only_header = await alice.client.post(
        "/v1/posts/batch", content=b"caption\n", headers={"content-type": "text/csv"}
    )
    assert_problem(only_header, 422, "batch_size")


async def test_a_batch_body_that_is_neither_json_nor_csv(alice: ApiUser) -> None:
    xml = await alice.client.post(
        "/v1/posts/batch", content=b"<items/>", headers={"content-type": "application/xml"}
    )
    assert_problem(xml, 415, "unsupported_content_type")
    broken = await alice.client.post(
        "/v1/posts/batch", content=b'{"items": [', headers={"content-type": "application/json"}
    )
    assert_problem(broken, 400, "malformed_json")
    listed = await alice.client.post("/v1/posts/batch", json=[1, 2])
    assert_problem(listed, 422, "validation_error")
    query = await alice.client.post(
        "/v1/posts/batch", json={"items": [{}]}, params={"stagger_every_minutes": 5}
    )
    assert_problem(query, 422, "stagger_in_query", field="stagger")
