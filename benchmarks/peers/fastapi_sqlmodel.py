"""The peer: the same list/create/health routes as the usual FastAPI stack.

FastAPI + SQLModel (SQLAlchemy async engine on asyncpg) + PyJWT, written the
way the FastAPI and SQLModel tutorials write it: a `Task` table model, pydantic
bodies, `Depends` for the session and the current user, `HTTPBearer`. It is
made fair, not slow: the same table and indexes (our migrations create them),
the same single query with a window count for the list, the same token checks
(`iss`, `aud`, `exp`, `sub`, 30 s leeway), a pool as large as ours. Tokens:
with BETTER_AUTH_JWKS_URL set, Better Auth's EdDSA tokens, their key fetched
with PyJWT's `PyJWKClient` as PyJWT's docs show (the key set cached, refetched
after 5 minutes or on an unknown kid); otherwise HS256 with
BETTER_AUTH_SECRET. Served by uvicorn with uvloop, httptools, no access log:

    DATABASE_URL=postgresql+asyncpg://... BETTER_AUTH_JWKS_URL=http://.../api/auth/jwks \
        uvicorn benchmarks.peers.fastapi_sqlmodel:app --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel import Field as Column
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

JWKS_URL = os.environ.get("BETTER_AUTH_JWKS_URL", "")
SECRET = os.environ.get("BETTER_AUTH_SECRET", "")
ISSUER = os.environ.get("JWT_ISSUER", "http://localhost:3000")
AUDIENCE = os.environ.get("JWT_AUDIENCE", ISSUER)
POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "10"))

engine = create_async_engine(os.environ["DATABASE_URL"], pool_size=POOL_SIZE, max_overflow=0)
Session = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
app = FastAPI()
bearer = HTTPBearer()
jwks_client = jwt.PyJWKClient(JWKS_URL) if JWKS_URL else None


class Task(SQLModel, table=True):
    __tablename__ = "tasks"

    id: int | None = Column(default=None, primary_key=True)
    user_id: str
    title: str = Column(max_length=200)
    description: str | None = Column(default=None, max_length=1000)
    completed: bool = False
    created_at: datetime
    updated_at: datetime


class TaskCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    completed: bool = False

    @field_validator("title")
    @classmethod
    def trimmed(cls, title: str) -> str:
        title = title.strip()
        if not title:
            raise ValueError("must not be blank")
        return title


class Health(BaseModel):
    status: str


async def session() -> AsyncIterator[AsyncSession]:
    async with Session() as db:
        yield db


def verification_key(token: str) -> tuple[Any, list[str]]:
    if jwks_client is None:
        return SECRET, ["HS256"]
    return jwks_client.get_signing_key_from_jwt(token), ["EdDSA"]


def current_user(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> str:
    try:
        key, algorithms = verification_key(credentials.credentials)
        claims = jwt.decode(
            credentials.credentials,
            key,
            algorithms=algorithms,
            issuer=ISSUER,
            audience=AUDIENCE,
            leeway=30,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as error:
        raise HTTPException(401, str(error), headers={"WWW-Authenticate": "Bearer"}) from None
    return str(claims["sub"])


def owner(user_id: str, sub: Annotated[str, Depends(current_user)]) -> str:
    if user_id != sub:
        raise HTTPException(403, "The user in the path is not the token's user")
    return sub


Owner = Annotated[str, Depends(owner)]
Db = Annotated[AsyncSession, Depends(session)]


@app.get("/health")
async def health() -> Health:
    return Health(status="ok")


@app.get("/api/{user_id}/tasks")
async def list_tasks(
    user: Owner,
    db: Db,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Task]:
    statement = (
        select(Task, func.count().over())
        .where(Task.user_id == user)
        .order_by(Task.created_at.desc(), Task.id.desc())  # type: ignore[attr-defined, union-attr]
        .limit(limit)
        .offset(offset)
    )
    rows = (await db.exec(statement)).all()
    response.headers["X-Total-Count"] = str(rows[0][1] if rows else 0)
    return [task for task, _ in rows]


@app.post("/api/{user_id}/tasks", status_code=201)
async def create_task(user: Owner, body: TaskCreate, db: Db, response: Response) -> Task:
    now = datetime.now(UTC)
    task = Task(user_id=user, **body.model_dump(), created_at=now, updated_at=now)
    db.add(task)
    await db.commit()
    response.headers["Location"] = f"/api/{user}/tasks/{task.id}"
    return task
