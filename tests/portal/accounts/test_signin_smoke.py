from starlette.testclient import TestClient

from tests.portal.conftest import SettableClock, World, sign_in


def test_sign_in_and_see_home(client: TestClient, world: World, clock: SettableClock) -> None:
    sign_in(client, world.people["uploader"], clock)
    home = client.get("/")
    assert home.status_code == 200, home.text
    assert "uploader@aberdeen.example" in home.text
