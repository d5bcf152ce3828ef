# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Helpers shared by the test suites."""

import os

import testtools

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Data captured from real machines and public traces lies beside the
# repository on development and CI machines, but not in a user's fresh
# clone. SOVEREIGN_AI_SHARED_DIR overrides the location.
SHARED_DIR = os.environ.get(
    'SOVEREIGN_AI_SHARED_DIR',
    os.path.join(os.path.dirname(REPO_ROOT), 'shared'))

FIXTURES_DIR = os.path.join(REPO_ROOT, 'sovereign_ai', 'tests', 'fixtures')


def shared_path(*parts):
    """Return the path of a file under the shared data folder."""
    return os.path.join(SHARED_DIR, *parts)


def fixture_path(*parts):
    """Return the path of a fixture file carried in this repository."""
    return os.path.join(FIXTURES_DIR, *parts)


def skip_unless_shared(test, *parts):
    """Skip ``test`` when the shared data file or folder is absent."""
    path = shared_path(*parts)
    if not os.path.exists(path):
        test.skipTest(
            '%s is absent: it holds real tool output and traces that a '
            'fresh clone does not carry. Set SOVEREIGN_AI_SHARED_DIR to '
            'its location to run this test.' % path)
    return path


class TestCase(testtools.TestCase):
    """Base class of the unit tests."""
