"""Builds the integrations' parts once for the box from [integrations]: the provider
clients, their OAuth grant clients, the token keeper, the connect flow's parts, the
delivery queue and its sender."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from telentir_box.config import IntegrationsConfig
from telentir_box.crypto.keyring import Keyring
from telentir_box.db.database import Database
from telentir_box.integrations.connections import Connections
from telentir_box.integrations.deliveries import DeliveryQueue
from telentir_box.integrations.google_calendar import GoogleCalendar
from telentir_box.integrations.hubspot import HubSpot
from telentir_box.integrations.oauth import OAuthClient
from telentir_box.integrations.outbox import Outbox
from telentir_box.integrations.providers import Provider
from telentir_box.integrations.salesforce import Salesforce
from telentir_box.integrations.teams import MicrosoftTeams
from telentir_box.integrations.tokens import TokenKeeper


@dataclass
class Integrations:
    connections: Connections
    queue: DeliveryQueue
    outbox: Outbox


def build_integrations(
    db: Database, keyring: Keyring, http: httpx.AsyncClient, config: IntegrationsConfig
) -> Integrations:
    providers: dict[str, Provider] = {
        "google_calendar": GoogleCalendar(config.google_calendar),
        "hubspot": HubSpot(config.hubspot),
        "salesforce": Salesforce(config.salesforce),
        "microsoft_teams": MicrosoftTeams(config.microsoft_teams),
    }
    token_sealer = keyring.sealer("integration-tokens")
    payload_sealer = keyring.sealer("integration-deliveries")
    # One grant client per provider, for every user's connection, on the box's HTTP client.
    oauth_clients = {name: OAuthClient(provider.config(), http) for name, provider in providers.items()}
    tokens = TokenKeeper(db, token_sealer, oauth_clients)
    connections = Connections(
        db=db,
        http=http,
        config=config,
        providers=providers,
        oauth_clients=oauth_clients,
        tokens=tokens,
        token_sealer=token_sealer,
        state_sealer=keyring.sealer("integration-states"),
    )
    queue = DeliveryQueue(db, payload_sealer, providers)
    outbox = Outbox(db, payload_sealer, http, config, providers, tokens, queue)
    return Integrations(connections, queue, outbox)
